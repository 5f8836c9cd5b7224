"""Which source files a stage runs: the transitive closure of its cxrbench imports (lazy ones included),
their packages' __init__ files, the package data files those modules name (published tables) and the schema.
workflow/pipeline.yaml (and so dvc.yaml) must list exactly these as the stage's code dependencies
(tests/test_pipeline_graph.py); `python -m cxrbench.pipeline_code` in the project root rewrites them after a
change of imports, and recomposes dvc.yaml for the datasets of params.yaml."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "cxrbench"
DATA_SUFFIXES = (".yaml", ".yml", ".csv", ".json")
SCHEMA = "workflow/schemas/params.schema.yaml"


def _module_file(name: str, root: Path) -> Path | None:
    base = root / "src" / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _string_constants(path: Path) -> list[str]:
    """The string literals of a module, docstrings and comments left out (they may name a file not read)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def code_dependencies(module: str, root: Path) -> set[str]:
    """Repository-relative paths of every file `module` needs to run."""
    seen: set[Path] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # a module's parent packages run their __init__ first
            path = _module_file(".".join(parts[:depth]), root)
            if path is not None and path not in seen:
                seen.add(path)
                pending.extend(_imports(path))
    files = {p.relative_to(root).as_posix() for p in seen}
    data_files = [d for d in (root / "src" / PACKAGE).rglob("*") if d.suffix in DATA_SUFFIXES]
    for path in seen:  # the package data a module reads: the files named in its strings
        strings = _string_constants(path)
        files.update(d.relative_to(root).as_posix() for d in data_files if any(d.name in s for s in strings))
    if f"src/{PACKAGE}/config.py" in files:
        files.add(SCHEMA)
    return files


def sync_declaration(root: Path) -> None:
    """Rewrite each stage's code dependencies in workflow/pipeline.yaml (data deps first, then code), keeping
    comments; then write dvc.yaml again for the datasets of params.yaml."""
    import yaml as pyyaml
    from ruamel.yaml import YAML

    from cxrbench.config import DVC_YAML, PIPELINE_DECLARATION, compose_dvc_yaml

    yaml = YAML()
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    path = root / PIPELINE_DECLARATION
    doc = yaml.load(path)
    for stage in doc["stages"].values():
        data = [d for d in stage.get("deps") or [] if not str(d).startswith(("src/", "workflow/"))]
        stage["deps"] = data + sorted(code_dependencies(stage["cmd"].split()[2], root))
    yaml.dump(doc, path)
    (root / DVC_YAML).write_text(compose_dvc_yaml(pyyaml.safe_load((root / "params.yaml").read_text()), path))


if __name__ == "__main__":
    sync_declaration(Path.cwd())
