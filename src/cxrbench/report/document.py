"""The report as a document: a summary on top, a table of contents, then sections of headings, paragraphs,
figures (embedded PNGs, also kept as files for the Markdown report) and tables (HTML and Markdown from one source;
long ones folded under a `<details>`), rendered to one self-contained HTML page and a Markdown report."""

from __future__ import annotations

import base64
import html
import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Fixed PNG metadata so the same figure gives the same bytes run after run.
_PNG_METADATA = {"Software": None}
FIGURES_DIR = "figures"  # beside the reports: the Markdown links the figures there
# A table longer or wider than this is for lookup: it is folded under its caption (the whole table, no row left out).
OPEN_TABLE_ROWS, OPEN_TABLE_COLUMNS = 8, 8


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight", metadata=_PNG_METADATA)
    plt.close(fig)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img_tag(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def table_html(frame: pd.DataFrame) -> str:
    table = frame.to_html(index=False, na_rep="–", border=0, classes="table", float_format=lambda v: f"{v:.3f}")
    return f'<div class="scroll">{table}</div>'


def table_markdown(frame: pd.DataFrame) -> str:
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "–"
        return f"{v:.3f}" if isinstance(v, float) else str(v).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class Report:
    """The summary, then sections appended in order; rendered to one self-contained HTML page (figures embedded)
    and a Markdown report that links the figures as files (`figures`: file name -> PNG bytes, to be written
    under FIGURES_DIR beside it)."""

    def __init__(self, title: str, banner: str | None = None):
        self.title, self.banner = title, banner
        self.figures: dict[str, bytes] = {}
        self._summary_html: list[str] = []
        self._summary_md: list[str] = []
        self._contents: list[tuple[str, str]] = []
        self._html: list[str] = []
        self._md: list[str] = []

    def summary(self, frame: pd.DataFrame, facts: list[tuple[str, str]]) -> None:
        """The block on the first screen: the facts of the run (name, value), then one row per task (`frame`)."""
        items = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>" for name, value in facts)
        self._summary_html.append(f'<section class="summary" id="summary"><h2>Summary</h2><dl>{items}</dl>'
                                  f"{table_html(frame)}</section>")
        self._summary_md += ["\n## Summary", "\n".join(f"- **{name}**: {value}" for name, value in facts),
                             table_markdown(frame)]

    def heading(self, text: str) -> None:
        ident = anchor(text)
        if ident in dict(self._contents):
            raise ValueError(f"two sections named {text!r}")
        self._contents.append((ident, text))
        self._html.append(f'<h2 id="{ident}">{html.escape(text)}</h2>')
        self._md.append(f"\n## {text}")

    def paragraph(self, text: str) -> None:
        self._html.append(f"<p>{html.escape(text)}</p>")
        self._md.append(text)

    def table(self, frame: pd.DataFrame, caption: str, *, folded: bool | None = None) -> None:
        """A table under its caption; folded (a `<details>` the reader opens) when `folded`, by default when it
        is longer than OPEN_TABLE_ROWS or wider than OPEN_TABLE_COLUMNS. The Markdown shows it whole."""
        if folded is None:
            folded = len(frame) > OPEN_TABLE_ROWS or len(frame.columns) > OPEN_TABLE_COLUMNS
        if folded:
            self._html.append(f"<details><summary>{html.escape(caption)} ({len(frame)} rows)</summary>"
                              f"{table_html(frame)}</details>")
        else:
            self._html.append(f'<p class="caption">{html.escape(caption)}</p>{table_html(frame)}')
        self._md += [f"\n**{caption}**", table_markdown(frame)]

    def figure(self, fig, alt: str, name: str) -> None:
        """A figure, embedded in the page and kept as `<name>.png` for the Markdown report."""
        file = f"{name}.png"
        if file in self.figures:
            raise ValueError(f"two figures named {name!r}")
        self.figures[file] = figure_png(fig)
        self._html.append(f"<figure>{img_tag(data_uri(self.figures[file]), alt)}"
                          f"<figcaption>{html.escape(alt)}</figcaption></figure>")
        self._md.append(f"![{alt}]({FIGURES_DIR}/{file})")

    def preformatted(self, text: str, caption: str) -> None:
        self._html.append(f"<details><summary>{html.escape(caption)}</summary><pre>{html.escape(text)}</pre></details>")
        self._md += [f"\n**{caption}**", f"```\n{text.rstrip()}\n```"]

    def html(self) -> str:
        banner = f'<p class="banner">{html.escape(self.banner)}</p>' if self.banner else ""
        contents = "".join(f'<li><a href="#{ident}">{html.escape(text)}</a></li>' for ident, text in self._contents)
        toc = f'<nav class="toc"><h2>Contents</h2><ol>{contents}</ol></nav>' if contents else ""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{banner}{''.join(self._summary_html)}{toc}"
            f"{''.join(self._html)}</body></html>\n"
        )

    def markdown(self) -> str:
        head = [f"# {self.title}"] + ([f"> {self.banner}"] if self.banner else [])
        contents = "\n".join(f"{n}. [{text}](#{ident})" for n, (ident, text) in enumerate(self._contents, 1))
        return "\n\n".join([*head, *self._summary_md, *(["\n## Contents", contents] if contents else []),
                             *self._md]) + "\n"


_CSS = (
    "body{font-family:sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}"
    "h1{margin:.2em 0}h2{border-bottom:2px solid #ccd;padding-bottom:.15em;margin-top:1.6em}"
    ".banner{background:#fff3cd;border:1px solid #e0c060;padding:.6em}"
    ".summary{background:#f3f6fb;border:1px solid #b8c6de;padding:.2em 1em .6em;margin:1em 0}"
    ".summary h2{border:none;margin:.4em 0}"
    ".summary dl{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em;margin:.4em 0 .6em}"
    ".summary table.table td,.summary table.table th{text-align:left}"
    ".summary table.table td:nth-child(3){white-space:nowrap;font-weight:bold}"
    ".summary dt{font-weight:bold}.summary dd{margin:0;overflow-wrap:anywhere}"
    ".toc ol{margin:.2em 0}.toc h2{font-size:1.1em;border:none;margin:.6em 0 .2em}"
    ".caption{font-weight:bold;margin:1em 0 .2em}"
    "details{margin:.4em 0 1em;border:1px solid #ddd;border-radius:4px;padding:.3em .6em}"
    "summary{cursor:pointer;font-weight:bold}"
    ".scroll{overflow-x:auto;max-width:100%}"
    "table.table{border-collapse:collapse;margin:.4em 0 1em;font-size:.85em}"
    "table.table td,table.table th{border-bottom:1px solid #ddd;padding:.2em .45em;text-align:right;"
    "vertical-align:top}"
    # on a screen the tables fit the page (long words break); on a phone they scroll inside their own box
    "@media (min-width:700px){table.table td,table.table th{overflow-wrap:anywhere}.toc ol{columns:2}}"
    # figures as wide as their picture (the caption wraps under it, not widening it): small ones sit side by side
    "figure{display:inline-block;margin:.4em;vertical-align:top;max-width:100%}"
    "figcaption{font-size:.9em;color:#444;contain:inline-size}img{max-width:100%;height:auto}"
    "pre{background:#f6f6f6;padding:1em;overflow:auto}"
)
