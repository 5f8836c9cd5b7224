"""The one exception type users see for bad input: it names the file, what was expected and what to do."""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """Bad or missing input. Always says which file, what was expected, and how to fix it."""

    def __init__(self, path: str | Path | None, problem: str, fix: str | None = None):
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path is not None else ""
        hint = f"\n  what to do: {fix}" if fix else ""
        super().__init__(f"{where}{problem}{hint}")
