"""The report as a document: sections of headings, paragraphs, tables (HTML and Markdown from one source) and
figures (embedded PNGs), rendered to one self-contained HTML page and a Markdown summary."""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Fixed PNG metadata so the same figure gives the same bytes run after run.
_PNG_METADATA = {"Software": None}


def figure_png(fig) -> str:
    """Encode a matplotlib figure as a base64 PNG data URI and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata=_PNG_METADATA)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def img_tag(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def table_html(frame: pd.DataFrame) -> str:
    table = frame.to_html(index=False, na_rep="–", border=0, classes="table", float_format=lambda v: f"{v:.3f}")
    return f'<div class="scroll">{table}</div>'


def table_markdown(frame: pd.DataFrame) -> str:
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "–"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


class Report:
    """Sections appended in order, rendered to one self-contained HTML page and a Markdown summary."""

    def __init__(self, title: str, banner: str | None = None):
        self.title, self.banner = title, banner
        self._html: list[str] = []
        self._md: list[str] = [f"# {title}"] + ([f"> {banner}"] if banner else [])

    def heading(self, text: str) -> None:
        self._html.append(f"<h2>{html.escape(text)}</h2>")
        self._md.append(f"\n## {text}")

    def paragraph(self, text: str) -> None:
        self._html.append(f"<p>{html.escape(text)}</p>")
        self._md.append(text)

    def table(self, frame: pd.DataFrame, caption: str | None = None) -> None:
        if caption:
            self._html.append(f"<h3>{html.escape(caption)}</h3>")
            self._md.append(f"\n### {caption}")
        self._html.append(table_html(frame))
        self._md.append(table_markdown(frame))

    def figure(self, fig, alt: str) -> None:
        self._html.append(f"<figure>{img_tag(figure_png(fig), alt)}<figcaption>{html.escape(alt)}</figcaption></figure>")

    def preformatted(self, text: str, caption: str) -> None:
        self._html.append(f"<details><summary>{html.escape(caption)}</summary><pre>{html.escape(text)}</pre></details>")

    def html(self) -> str:
        banner = f'<p class="banner">{html.escape(self.banner)}</p>' if self.banner else ""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{banner}{''.join(self._html)}</body></html>\n"
        )

    def markdown(self) -> str:
        return "\n\n".join(self._md) + "\n"


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    ".banner{background:#fff3cd;border:1px solid #e0c060;padding:.6em}"
    ".scroll{overflow-x:auto;max-width:100%}table.table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "table.table td,table.table th{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:right}"
    "figure{display:inline-block;margin:.5em}img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto}"
)
