"""Section Provenance: the inputs' hashes (from the acquire manifests), the code version and the parameters."""

from __future__ import annotations

import hashlib
import subprocess

import pandas as pd
import yaml

from cxrbench import __version__, artefacts
from cxrbench.report.document import Report
from cxrbench.report.run import Run


def section(report: Report, run: Run) -> None:
    report.heading("Provenance")
    report.table(input_hashes(run), "Inputs (from the acquire manifests)")
    report.paragraph(f"cxrbench {__version__}, code {code_version()}; the parameters below are exactly "
                     "those of this run.")
    report.preformatted(yaml.safe_dump(run.params, sort_keys=False), "params.yaml")


def input_hashes(run: Run) -> pd.DataFrame:
    rows = []
    for manifest in sorted(artefacts.MANIFESTS[name] for name in run.datasets):
        table = run.csv(manifest)
        digest = hashlib.sha256("\n".join(table["file"] + " " + table["sha256"]).encode()).hexdigest()
        rows.append({"dataset": manifest.stem, "files": len(table), "bytes": int(table["bytes"].sum()), "sha256 of manifest": digest})
    return pd.DataFrame(rows)


def code_version() -> str:
    """The checkout the report was made from (`git describe --always --dirty`), or why there is none."""
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True,
                                   text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({err})"
    return described.stdout.strip() if described.returncode == 0 else "unknown (not a git checkout)"
