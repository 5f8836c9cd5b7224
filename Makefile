# The two set-up commands: `make run` (the whole pipeline on the embedded synthetic default) and
# `make test` (the test suite). Both create the virtual environment first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
CORES ?= 2

# Faster CPU training with glibc's allocator tuned (docs: MEASURED.md); no analytics calls, no network.
export MALLOC_MMAP_THRESHOLD_ := 33554432
export MALLOC_TRIM_THRESHOLD_ := 68719476736
export MALLOC_TOP_PAD_ := 1073741824
export DVC_NO_ANALYTICS := 1
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test lint venv clean

venv: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(PIP_TORCH_ARGS)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(INSTALLED)
	$(BIN)/snakemake --cores $(CORES)
	@echo "report: $(CURDIR)/results/report.html"

# The default run stays under 15 minutes; the longer checks (real Slurm, SSH remote, fault injection, DVC
# experiments) run with PYTEST_ARGS='-m "slurm or remote or faults or slow"', every test with PYTEST_ARGS='-m ""'
# (.ci/run). TEST_WORKERS test processes share the work, a test module each at a time (pytest-xdist): most tests
# wait on single-threaded work (interpreter start-up, imports, DVC's bookkeeping), so 2 workers on 2 cores
# finish sooner than one (NOTES.md).
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
test: $(INSTALLED)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slurm and not remote and not faults and not slow" $(PYTEST_ARGS)

# ruff (configured in pyproject.toml) and Snakemake's own linter; .ci/run runs both.
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

clean:
	rm -rf data models dvclive metrics plots results logs .snakemake
