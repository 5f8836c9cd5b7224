# Helpers that turn the stages of dvc.yaml (the one declaration of the DAG) into Snakemake rules.
import json
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from cxrbench import config as cxrbench_config
from cxrbench.errors import DataError

min_version("9.0")


configfile: "params.yaml"


validate(config, schema="../schemas/params.schema.yaml")
try:  # the checks every stage makes too: the datasets can be had, dvc.yaml holds exactly their stages, and the
    # published weights asked for are there
    cxrbench_config.validate(config)
    cxrbench_config.require_composed(config, Path(workflow.basedir))
    for task, weights in cxrbench_config.imagenet_weights(config).items():  # before Snakemake's bare "missing input"
        if not Path(workflow.basedir, weights["file"]).is_file():
            raise cxrbench_config.missing_weights(task, weights)
except DataError as err:
    raise WorkflowError(str(err))

DVC_STAGES = yaml.safe_load(Path(workflow.basedir, "dvc.yaml").read_text())["stages"]
# Appended to every stage's command: record the finished stage in dvc.lock (serialised: DVC has one repo lock).
RECORD_IN_DVC_LOCK = "python -m cxrbench.record_stage"


def _entry_path(entry):
    """dvc.yaml entries are either a path or {path: options}."""
    return entry if isinstance(entry, str) else next(iter(entry))


def _config_value(dotted_key):
    value = config
    for part in dotted_key.split("."):
        value = value[part]
    return value


def stage_inputs(stage):
    return [_entry_path(e) for e in DVC_STAGES[stage].get("deps", [])]


def stage_output_paths(stage):
    """outs, metrics and plots, as paths (what a rule that needs them lists as input)."""
    return [_entry_path(e) for kind in ("outs", "metrics", "plots") for e in DVC_STAGES[stage].get(kind, [])]


def stage_outputs(stage):
    """stage_output_paths as a rule's outputs: a path without a file extension is a directory."""
    return [p if Path(p).suffix else directory(p) for p in stage_output_paths(stage)]


def stage_params(stage):
    """The stage's parameter values, so Snakemake's params trigger fires exactly when DVC's would."""
    return {k.replace(".", "__"): json.dumps(_config_value(k), sort_keys=True) for k in DVC_STAGES[stage].get("params", [])}


def stage_shell(stage):
    return f"{DVC_STAGES[stage]['cmd']} && {RECORD_IN_DVC_LOCK} {stage}"


def stage_log(stage):
    """Each stage module writes logs/<stage>.log itself (the same under dvc repro)."""
    return f"logs/{stage}.log"


def stage_threads(stage):
    if stage == "decode_nih":
        return config["decode"]["nih"]["workers"]
    if runs_network(stage):
        return config["train"]["runtime"]["threads"]
    return 1


# Stages that run a network (torch); on CUDA configs they ask the cluster for a GPU. benchmark_<task> is the
# template of a matrix's stages, benchmark_<task>-<model>-seed<seed>.
NETWORK_STAGES = ("train_classifier", "train_segmenter", "train_nodules", "evaluate_classifier", "evaluate_segmenter",
                  "evaluate_localisation", "evaluate_nodules", "evaluate_external", "benchmark_classifier",
                  "benchmark_segmenter", "benchmark_nodule_classifier", "benchmark_nodule_heatmap")


def runs_network(stage):
    return stage.split("-")[0] in NETWORK_STAGES


def stage_resources(stage):
    """What DVC cannot say: resources for cluster runs (GPU stages ask for one GPU)."""
    uses_gpu = runs_network(stage) and config["train"]["runtime"]["device"] == "cuda"
    resources = {"mem_mb": 16000 if uses_gpu or stage == "decode_nih" else 4000, "runtime": 60}
    if uses_gpu:
        resources.update(gpu=1, cpus_per_gpu=config["train"]["runtime"]["threads"], runtime=24 * 60)
    return resources


def matrix_stages(template):
    """The stages dvc.yaml holds for the cells of a matrix template (cxrbench.matrix: <template>-<model>-seed<seed>)."""
    return [stage for stage in DVC_STAGES if stage.startswith(f"{template}-")]


def declare_stage_rules(*stages, local=()):
    """One rule per named stage that dvc.yaml holds (the stages of the datasets used), named like the stage
    (verb_object); the `local` ones run on the submitting host on a cluster (quick, no data of their own).

    The command travels in params: a rule's shell body is evaluated when the job runs, after this loop has
    moved on, while params are fixed now. It also makes a changed command rerun the stage, as in DVC."""
    for stage in stages:
        if stage not in DVC_STAGES:
            continue

        rule:
            name: stage
            localrule: stage in local
            input: stage_inputs(stage)
            output: stage_outputs(stage)
            params: command=stage_shell(stage), **stage_params(stage)
            log: stage_log(stage)
            threads: stage_threads(stage)
            resources: **stage_resources(stage)
            conda: "../envs/cxrbench.yaml"
            shell: "{params.command}"
