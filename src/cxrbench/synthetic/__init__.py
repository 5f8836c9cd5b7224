"""Phantom chest radiographs written in the real datasets' on-disk formats (the embedded default).

- `write_jsrt_scr`: JSRT raw images with CLNDAT/CNNDAT tables, and the SCR masks and landmarks.
- `write_nih`: NIH ChestX-ray14 PNGs, Data_Entry_2017_v2020.csv, BBox_List_2017.csv, split lists.
- `write_google_labels`: Google's four-findings and all-findings expert label files for those PNGs.

Same arguments and seed, same bytes. Each writer fills a new (or empty) directory; the caller moves
the finished directory into place.
"""

from cxrbench.synthetic.google_labels import all_findings_majority, write_google_labels
from cxrbench.synthetic.jsrt_scr import write_jsrt_scr
from cxrbench.synthetic.nih import (
    BOX_LABELS,
    NIH_LABELS,
    class_prevalences,
    fit_label_model,
    write_nih,
)

__all__ = [
    "BOX_LABELS",
    "NIH_LABELS",
    "all_findings_majority",
    "class_prevalences",
    "fit_label_model",
    "write_google_labels",
    "write_jsrt_scr",
    "write_nih",
]
