"""Parameters: configs/ (Hydra groups) composed into params.yaml, validated against one JSON schema; and the
stages those parameters need, composed from workflow/pipeline.yaml into dvc.yaml.

params.yaml is composed exactly as DVC's Hydra integration does it (`dvc exp run -S ...`): same config
directory, same `version_base=None`, resolved, dumped with `OmegaConf.to_yaml`. So `cxrbench compose` and
`dvc exp run` write the same bytes, and a test holds the committed params.yaml to that.

dvc.yaml holds the stages of the datasets params.yaml lists (`datasets`): DVC cannot make a stage or a
dependency conditional, so `cxrbench compose` writes both files together, and every stage and the Snakefile
refuse to run when dvc.yaml was composed for other datasets.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from cxrbench import artefacts, matrix
from cxrbench.errors import DataError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "configs"
SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "params.schema.yaml"
PIPELINE_DECLARATION = Path("workflow") / "pipeline.yaml"
DVC_YAML = Path("dvc.yaml")
# What `datasets` may list. SCR is masks drawn on the JSRT images (the JSRT store holds both), and Google's
# expert labels are labels of NIH images: each needs the other dataset named here.
DATASETS = ("jsrt", "scr", "nih", "google")
REQUIRES = {"jsrt": "scr", "scr": "jsrt", "google": "nih"}
WHY_REQUIRED = {"jsrt": "the JSRT store and every JSRT stage carry the SCR masks (JSRT without SCR is not supported yet)",
                "scr": "SCR's masks are drawn on the JSRT images", "google": "Google's labels are labels of NIH images"}
COMPOSE_HINT = ("run `cxrbench compose` with your overrides: it writes params.yaml and dvc.yaml together "
                "(`dvc exp run -S datasets=...` rewrites params.yaml only)")


# model.<task>.init: random weights, the network's published ImageNet weights, or else a path to weights of ours
INIT_RANDOM, INIT_IMAGENET = "random", "imagenet"


def compose_yaml(overrides: Sequence[str] = (), config_dir: Path = CONFIG_DIR) -> str:
    """The params.yaml text that `dvc exp run -S <overrides>` would write."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(Path(config_dir).resolve()), version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    OmegaConf.resolve(cfg)
    return OmegaConf.to_yaml(cfg)


def validate(params: dict[str, Any], source: str | Path = "params.yaml") -> None:
    """Check parameters against workflow/schemas/params.schema.yaml, then that every dataset listed can be
    had from the source; name the key and what is allowed or what to set."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            allowed = _allowed(err)
            lines.append(f"  {key}: {err.message}" + (f" (allowed: {allowed})" if allowed else ""))
        raise DataError(source, "parameters do not match workflow/schemas/params.schema.yaml:\n" + "\n".join(lines),
                        "edit configs/ (or your override) and recompose with `cxrbench compose`")
    problems = model_problems(params)
    if problems:
        raise DataError(source, "the networks cannot be initialised as configured:\n" + "\n".join(f"  {p}" for p in problems),
                        "pick `init: random`, `init: imagenet` for a network whose config has `imagenet:` weights, "
                        "or the path of a state dict")
    problems = matrix.problems(params)
    if problems:
        raise DataError(source, "the benchmark matrix cannot be made stages:\n" + "\n".join(f"  {p}" for p in problems),
                        "rename as said, in configs/ or your override, and recompose with `cxrbench compose`")
    problems = dataset_problems(params)
    if problems:
        raise DataError(source, "the datasets cannot be had as configured:\n" + "\n".join(f"  {p}" for p in problems),
                        "set the parameters named (e.g. `cxrbench compose source=local source.nih=/data/nih "
                        "datasets=[nih]`), or leave the dataset out of `datasets`")


def dataset_problems(params: dict[str, Any]) -> list[str]:
    """What stops the listed datasets from running: a companion dataset missing, or no copy to read."""
    chosen, source = params["datasets"], params["source"]
    problems = [f"datasets: {name} is listed without {REQUIRES[name]} ({WHY_REQUIRED[name]}): list both, or neither"
                for name in chosen if name in REQUIRES and REQUIRES[name] not in chosen]
    if source["kind"] != "synthetic":
        problems += [f"source.{name}: not set, but datasets lists {name}: set source.{name}=/path/to/your/copy "
                     f"(source.kind={source['kind']})" for name in chosen if not source[name]]
    return problems


def networks(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every network config params hold, by its dotted key: model.<task>, and the benchmark matrix's challengers."""
    found = {f"model.{task}": network for task, network in params["model"].items()}
    return found | {key: matrix.network(params, key) for task in matrix.TASKS for _, key in matrix.models(params, task)}


def model_problems(params: dict[str, Any]) -> list[str]:
    """ImageNet initialisation asked of a network without published ImageNet weights."""
    return [f"{key}.init: imagenet, but {key} ({network['name']}) names no ImageNet weights (no `imagenet:` block)"
            for key, network in networks(params).items()
            if network["init"] == INIT_IMAGENET and "imagenet" not in network]


def init_files(network: dict[str, Any]) -> list[str]:
    """The file a network's initial weights come from (none for random): a dependency of its training stage."""
    init = network["init"]
    return [] if init == INIT_RANDOM else [network["imagenet"]["file"] if init == INIT_IMAGENET else init]


def imagenet_weights(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`<key>.imagenet` of each network that starts from ImageNet weights, by its dotted key (model.classifier)."""
    return {key: network["imagenet"] for key, network in networks(params).items() if network["init"] == INIT_IMAGENET}


def fetch_command(spec: dict[str, Any]) -> str:
    """How published weights enter a project: DVC downloads them once and records their URL and checksum."""
    return f"dvc import-url {spec['url']} {spec['file']}"


def missing_weights(task: str, spec: dict[str, Any]) -> DataError:
    return DataError(spec["file"], f"missing: {task}.init=imagenet loads these published ImageNet weights "
                                   f"(sha256 {spec['sha256']}..., from {spec['url']})",
                     f"run `cxrbench weights --fetch` (it runs `{fetch_command(spec)}`), or download the URL yourself "
                     f"and set {task}.imagenet.file=/path/to/{Path(spec['url']).name}")


def _initial_weights(stage: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The initial-weight files of the networks a stage's params name (model.<task>, a challenger)."""
    known = networks(params)
    return [path for key in stage.get("params", []) if key in known for path in init_files(known[key])]


def _allowed(err: jsonschema.ValidationError) -> str:
    if err.validator == "enum":
        return ", ".join(map(str, err.validator_value))
    if err.validator == "additionalProperties":
        return ", ".join(sorted(err.schema.get("properties", {})))
    if err.validator == "type":
        return str(err.validator_value)
    return ""


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "params.yaml not found", "run `cxrbench compose` in the project root")
    params = yaml.safe_load(path.read_text())
    validate(params, path)
    return params


def _entry_path(entry: str | dict) -> str:
    """dvc.yaml entries are either a path or {path: options}."""
    return entry if isinstance(entry, str) else next(iter(entry))


def stage_outputs(stage: dict[str, Any]) -> list[str]:
    return [_entry_path(e) for kind in ("outs", "metrics", "plots") for e in stage.get(kind) or []]


def compose_pipeline(datasets: Sequence[str], declaration: Path = PROJECT_ROOT / PIPELINE_DECLARATION,
                     params: dict[str, Any] | None = None) -> dict:
    """The stages of workflow/pipeline.yaml that `datasets` need: those whose meta.datasets are all listed, each
    without its dependencies on the outputs of a stage left out. With `params`, the benchmark matrix's template
    (meta.matrix) becomes a stage per cell (`_cells`) and each training stage also depends on the files its
    networks' initial weights come from; without, the template and the dependencies on its cells are left out."""
    stages = _cells(yaml.safe_load(Path(declaration).read_text())["stages"],
                    [] if params is None else [cell for cell in matrix.all_cells(params) if not cell.main])
    kept = {name: dict(stage) for name, stage in stages.items() if set(stage["meta"]["datasets"]) <= set(datasets)}
    left_out = {path for name, stage in stages.items() if name not in kept for path in stage_outputs(stage)}
    produced = {path for stage in kept.values() for path in stage_outputs(stage)}
    for name, stage in kept.items():
        stage["deps"] = [d for d in stage.get("deps", []) if _entry_path(d) not in left_out]
        orphans = [d for d in stage["deps"] if not d.startswith(("src/", "workflow/")) and d not in produced]
        if orphans:  # a mistake in the declaration, not in the user's parameters
            raise ValueError(f"{declaration}: stage {name} depends on {orphans}, which no stage kept for {datasets} writes")
        if params is not None:
            stage["deps"] = stage["deps"] + _initial_weights(stage, params)
    return {"stages": kept}


def _cells(stages: dict[str, Any], cells: Sequence[matrix.Cell]) -> dict[str, Any]:
    """The declaration with its matrix template made one stage per cell (named cell.stage, its command given the
    cell's model and seed, its parameters the template's and its own network's, its outputs in the cell's folder),
    and every dependency on a cell's path (artefacts.CELL) made one per cell."""
    def per_cell(entries: list) -> list:
        """Each entry on a cell's path (models/benchmark/<task>/{cell}: a string, pipeline.yaml gives such
        dependencies no options) once per cell of that task."""
        return [expanded for entry in entries
                for expanded in ([cell.folder.as_posix() for cell in cells
                                  if entry == (artefacts.BENCHMARK[cell.task] / artefacts.CELL).as_posix()]
                                 if artefacts.CELL in _entry_path(entry) else [entry])]

    expanded = {}
    for name, stage in stages.items():
        if stage["meta"].get("matrix"):
            for cell in (c for c in cells if c.task == stage["meta"]["matrix"]):
                expanded[cell.stage] = {**copy.deepcopy(stage),
                                        "cmd": f"{stage['cmd']} +instance.model={cell.model} +instance.seed={cell.seed}",
                                        "params": [*stage.get("params", []), cell.network_key],
                                        "outs": [o.replace(artefacts.CELL, cell.name) for o in stage["outs"]]}
        else:
            expanded[name] = {**stage, "deps": per_cell(stage.get("deps", []))}
    return expanded


def compose_dvc_yaml(params: dict[str, Any], declaration: Path = PROJECT_ROOT / PIPELINE_DECLARATION) -> str:
    """The dvc.yaml text for the datasets and initial weights of `params`."""
    datasets = params["datasets"]
    header = (f"# Written by `cxrbench compose` from {PIPELINE_DECLARATION.as_posix()} (the one declaration of the stage "
              f"DAG)\n# for datasets: [{', '.join(datasets)}]. Edit that file and recompose; do not edit this one.\n")
    return header + yaml.safe_dump(compose_pipeline(datasets, declaration, params), sort_keys=False, width=120)


def require_composed(params: dict[str, Any], root: Path = Path(".")) -> None:
    """Refuse to run when dvc.yaml holds other stages than `params['datasets']` need, or other dependencies than
    the networks' initial weights in params (a hand edit, or `dvc exp run -S datasets=...` or
    `-S model.classifier.init=...`). Nothing to check outside a project (no dvc.yaml)."""
    dvc_yaml, declaration = Path(root) / DVC_YAML, Path(root) / PIPELINE_DECLARATION
    if not (dvc_yaml.is_file() and declaration.is_file()):
        return
    present = yaml.safe_load(dvc_yaml.read_text())["stages"]
    needed = compose_pipeline(params["datasets"], declaration, params)["stages"]
    if set(present) != set(needed):
        differences = [f"{label}: {', '.join(sorted(names))}" for label, names in
                       (("missing", set(needed) - set(present)), ("not needed", set(present) - set(needed))) if names]
        raise DataError(dvc_yaml, f"its stages are not those of datasets {params['datasets']} in params.yaml "
                        f"({'; '.join(differences)})", COMPOSE_HINT)
    weights = {name: sorted(set(stage.get("deps", [])) ^ set(present[name].get("deps") or []))
               for name, stage in needed.items()}
    if any(weights.values()):
        differences = [f"{name}: {', '.join(paths)}" for name, paths in weights.items() if paths]
        raise DataError(dvc_yaml, "its dependencies are not those params.yaml gives (the networks' initial weights, "
                        f"or workflow/pipeline.yaml changed since): {'; '.join(differences)}", COMPOSE_HINT)
