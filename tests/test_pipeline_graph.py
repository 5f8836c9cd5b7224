"""One pipeline, two runners: the Snakemake rules are the DVC stages (same commands, inputs, outputs), and
every stage lists as dependencies all the cxrbench code it runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from cxrbench.pipeline_code import code_dependencies

ROOT = Path(__file__).resolve().parents[1]
DVC_STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
RECORD = " && python -m cxrbench.record_stage "


def _paths(entries) -> list[str]:
    return [e if isinstance(e, str) else next(iter(e)) for e in entries or []]


@pytest.fixture(scope="module")
def snakemake_rules():
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=ROOT / "Snakefile", workdir=ROOT)
        return {rule.name: rule for rule in workflow._workflow.rules}


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
    assert sorted(map(str, snakemake_rules["all"].input)) == sorted(_paths(DVC_STAGES["write_report"]["outs"]))


@pytest.mark.parametrize("stage", sorted(DVC_STAGES))
def test_stage_lists_all_its_code(stage):
    module = DVC_STAGES[stage]["cmd"].split()[2]
    needed = code_dependencies(module, ROOT)
    deps = set(_paths(DVC_STAGES[stage].get("deps")))
    missing = sorted(needed - deps)
    assert not missing, f"dvc.yaml stage {stage} must list: {missing}"
    stale = sorted(d for d in deps if d.startswith("src/") and d not in needed)
    assert not stale, f"dvc.yaml stage {stage} lists code it does not import: {stale}"


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
