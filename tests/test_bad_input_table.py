"""The README's bad-input table stays honest: every test it names exists, in the file it names."""

from __future__ import annotations

import ast
import re

from helpers.pipeline import ROOT

SECTION = "## Bad input: what the tests try and what you see"
NAMED_TEST = re.compile(r"`(test_\w+\.py)::(test_\w+)`")


def test_every_test_named_in_the_readme_bad_input_table_exists():
    readme = (ROOT / "README.md").read_text()
    assert SECTION in readme
    table = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    named = NAMED_TEST.findall(table)
    assert len(named) >= 30, "the table lost its rows"
    missing = []
    for file_name, test_name in named:
        path = ROOT / "tests" / file_name
        defined = {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)} \
            if path.is_file() else set()
        if test_name not in defined:
            missing.append(f"{file_name}::{test_name}")
    assert not missing, f"README names tests that do not exist: {missing}"
