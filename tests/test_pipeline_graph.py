"""One pipeline, two runners: the Snakemake rules are the DVC stages (same commands, inputs, outputs) for every
choice of datasets, dvc.yaml is the composition of workflow/pipeline.yaml for the datasets of params.yaml, and
every stage lists as dependencies all the cxrbench code it runs."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cxrbench import config
from cxrbench.errors import DataError
from cxrbench.pipeline_code import code_dependencies

ROOT = Path(__file__).resolve().parents[1]
DVC_STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
DECLARED = yaml.safe_load((ROOT / config.PIPELINE_DECLARATION).read_text())["stages"]
RECORD = " && python -m cxrbench.record_stage "
# Every choice of datasets a user may make (config.validate refuses the others).
SELECTIONS = [["nih"], ["nih", "google"], ["jsrt", "scr"], ["jsrt", "scr", "nih"], ["jsrt", "scr", "nih", "google"]]
JSRT_SCR_STAGES = {"acquire_jsrt_scr", "decode_jsrt", "split_scr", "split_jsrt", "train_segmenter", "train_nodules",
                   "evaluate_segmenter", "evaluate_nodules", "rank_segmenters", "benchmark_segmenter-unet-seed1",
                   "benchmark_segmenter-attention_unet-seed0", "benchmark_segmenter-attention_unet-seed1",
                   "benchmark_nodule_classifier-densenet_small-seed1", "benchmark_nodule_heatmap-unet-seed1",
                   "rank_nodules"}
NIH_STAGES = {"acquire_nih", "decode_nih", "split_nih", "train_classifier", "evaluate_classifier",
              "evaluate_localisation", "rank_classifiers", "benchmark_classifier-densenet121-seed1",
              "benchmark_classifier-resnet18-seed0", "benchmark_classifier-resnet18-seed1"}
GOOGLE_STAGES = {"acquire_google", "assess_labels", "evaluate_expert_labels"}
BOTH_STAGES = {"evaluate_external"}  # the NIH classifier on the JSRT images


def _paths(entries) -> list[str]:
    return [e if isinstance(e, str) else next(iter(e)) for e in entries or []]


def load_rules(project: Path) -> dict:
    """The rules Snakemake builds from the Snakefile in `project` (with its params.yaml and dvc.yaml)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=project / "Snakefile",
                                workdir=project)
        return {rule.name: rule for rule in workflow._workflow.rules}


@pytest.fixture(scope="module")
def snakemake_rules():
    return load_rules(ROOT)


def composed_params(*overrides: str) -> dict:
    return yaml.safe_load(config.compose_yaml(overrides))


def composed_project(dest: Path, *overrides: str) -> Path:
    """The workflow files of the project with params.yaml and dvc.yaml composed by `cxrbench compose`."""
    from cxrbench.cli import main as cli_main

    shutil.copy2(ROOT / "Snakefile", dest / "Snakefile")
    shutil.copytree(ROOT / "workflow", dest / "workflow")
    assert cli_main(["compose", *overrides, "-o", str(dest / "params.yaml")]) == 0
    return dest


def dvc_stages(project: Path) -> dict[str, tuple[set[str], set[str]]]:
    """DVC's own reading of dvc.yaml in `project`: stage -> (deps, outs), paths relative to the project."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    def relative(entries) -> set[str]:
        return {Path(e.fs_path).relative_to(project).as_posix() for e in entries if not isinstance(e, ParamsDependency)}

    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=project, check=True)
    with Repo(str(project)) as repo:
        return {stage.name: (relative(stage.deps), relative(stage.outs)) for stage in repo.index.stages}


def test_rules_are_the_dvc_stages(snakemake_rules):
    assert set(snakemake_rules) - {"all"} == set(DVC_STAGES)


@pytest.mark.parametrize("stage", sorted(DVC_STAGES))
def test_rule_matches_stage(snakemake_rules, stage):
    rule, spec = snakemake_rules[stage], DVC_STAGES[stage]
    assert rule.shellcmd == "{params.command}"
    assert rule.params.command == spec["cmd"] + RECORD + stage
    assert sorted(map(str, rule.input)) == sorted(_paths(spec.get("deps")))
    outs = sorted(_paths(spec.get("outs")) + _paths(spec.get("metrics")) + _paths(spec.get("plots")))
    assert sorted(map(str, rule.output)) == outs
    for out in rule.output:
        assert out.is_directory == (Path(str(out)).suffix == ""), f"{out}: directories are the paths without a suffix"
    assert rule.log and str(rule.log[0]) == f"logs/{stage}.log"
    declared = {k.replace(".", "__") for k in spec.get("params", [])}
    assert set(rule.params.keys()) == declared | {"command"}


def test_all_targets_the_report(snakemake_rules):
    assert sorted(map(str, snakemake_rules["all"].input)) == sorted(config.stage_outputs(DVC_STAGES["write_report"]))


def test_every_artefact_is_named_once_in_cxrbench_artefacts():
    """The stages' paths come from cxrbench.artefacts; the declaration must name the same ones, no more, no fewer."""
    from cxrbench import artefacts

    declared = {path for stage in DECLARED.values() for path in _paths(stage.get("deps")) + config.stage_outputs(stage)
                if not path.startswith(("src/", "workflow/"))}
    assert declared == artefacts.named()


def test_committed_dvc_yaml_is_the_composition_for_params_yaml():
    assert (ROOT / "dvc.yaml").read_text() == config.compose_dvc_yaml(yaml.safe_load((ROOT / "params.yaml").read_text()))


@pytest.mark.parametrize("datasets", SELECTIONS, ids="+".join)
def test_each_choice_of_datasets_keeps_exactly_its_stages(datasets):
    params = composed_params(f"datasets=[{','.join(datasets)}]")
    stages = config.compose_pipeline(datasets, params=params)["stages"]
    expected = {"describe_datasets", "write_report"}
    expected |= JSRT_SCR_STAGES if "jsrt" in datasets else set()
    expected |= NIH_STAGES if "nih" in datasets else set()
    expected |= GOOGLE_STAGES if "google" in datasets else set()
    expected |= BOTH_STAGES if {"nih", "jsrt"} <= set(datasets) else set()
    assert set(stages) == expected
    produced = {path for stage in stages.values() for path in config.stage_outputs(stage)}
    for name, stage in stages.items():
        data_deps = {d for d in stage["deps"] if not d.startswith(("src/", "workflow/"))}
        assert data_deps <= produced, f"{name} would wait for outputs no stage of {datasets} writes"
    if "nih" in datasets:
        assert ("data/raw/google" in stages["split_nih"]["deps"]) == ("google" in datasets)


@pytest.mark.parametrize("datasets", SELECTIONS, ids="+".join)
def test_both_runners_see_the_same_graph_for_each_choice_of_datasets(tmp_path, datasets):
    project = composed_project(tmp_path, f"datasets=[{','.join(datasets)}]")
    rules, stages = load_rules(project), dvc_stages(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert set(rules) - {"all"} == set(stages) == set(config.compose_pipeline(datasets, params=params)["stages"])
    for name, (deps, outs) in stages.items():
        assert set(map(str, rules[name].input)) == deps, name
        assert set(map(str, rules[name].output)) == outs, name


def test_a_hand_edited_datasets_list_is_refused_by_both_runners(tmp_path):
    """params.yaml changed without recomposing (e.g. `dvc exp run -S datasets=[nih]`): no runner goes on."""
    from snakemake.exceptions import WorkflowError

    project = composed_project(tmp_path, "experiment=tiny")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["datasets"] = ["nih"]
    with pytest.raises(DataError, match="run `cxrbench compose`") as err:
        config.require_composed(params, project)
    assert "not needed: acquire_google, acquire_jsrt_scr" in str(err.value)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(WorkflowError, match="not those of datasets"):
        load_rules(project)


@pytest.mark.parametrize("stage", sorted(DECLARED))
def test_stage_lists_all_its_code(stage):
    module = DECLARED[stage]["cmd"].split()[2]
    needed = code_dependencies(module, ROOT)
    deps = set(_paths(DECLARED[stage].get("deps")))
    missing = sorted(needed - deps)
    assert not missing, f"workflow/pipeline.yaml stage {stage} must list: {missing}"
    stale = sorted(d for d in deps if d.startswith("src/") and d not in needed)
    assert not stale, f"workflow/pipeline.yaml stage {stage} lists code it does not import: {stale}"


def test_code_dependencies_follow_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "src" / "cxrbench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from cxrbench.sub import b\n")
    (pkg / "sub" / "b.py").write_text("import numpy\n")
    found = code_dependencies("cxrbench.a", tmp_path)
    assert found == {"src/cxrbench/__init__.py", "src/cxrbench/a.py", "src/cxrbench/sub/__init__.py",
                     "src/cxrbench/sub/b.py"}
    assert ast.parse((pkg / "a.py").read_text())  # the fixture itself is valid Python


def test_code_dependencies_take_the_package_data_a_module_names_in_its_strings(tmp_path):
    pkg = tmp_path / "src" / "cxrbench"
    (pkg / "tables").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("read.csv", "mentioned.yaml", "documented.json"):
        (pkg / "tables" / name).write_text("")
    (pkg / "a.py").write_text('"""Reads nothing like documented.json."""\nfrom pathlib import Path\n'
                              '# mentioned.yaml is only in a comment\nTABLE = Path(__file__).parent / "tables" / "read.csv"\n')
    assert code_dependencies("cxrbench.a", tmp_path) == {"src/cxrbench/__init__.py", "src/cxrbench/a.py",
                                                         "src/cxrbench/tables/read.csv"}


def test_the_conda_environment_pins_what_the_project_pins():
    """workflow/envs/cxrbench.yaml (for `--sdm conda`; no conda channel is reachable here to build it) installs
    this project with the Python and torch of pyproject.toml and the Makefile."""
    import tomllib

    environment = yaml.safe_load((ROOT / "workflow" / "envs" / "cxrbench.yaml").read_text())["dependencies"]
    python = next(d for d in environment if isinstance(d, str) and d.startswith("python="))
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"] == f">={python[7:]}"
    pip = next(d["pip"] for d in environment if isinstance(d, dict))
    assert "-e ../.." in pip
    torch_pin = next(p for p in pip if p.startswith("torch=="))
    assert f"install --quiet {torch_pin} " in (ROOT / "Makefile").read_text()


def test_snakemake_lint_is_clean():
    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=300)
    assert lint.returncode == 0 and "Lints for" not in lint.stdout + lint.stderr, lint.stdout + lint.stderr
