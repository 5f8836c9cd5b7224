"""The benchmark report (results/report.html and results/report.md), written by the stage write_report.

A section is a module with `section(report, run)`: it reads what the stages wrote (`run`, a `Run`) and appends
its heading, paragraphs, tables and figures to `report` (a `Report`). Every table of ours beside published results
is built by `comparison.comparison_table`. The stage decides which sections run, from the datasets used.

- `document`: `Report`, the page being written (HTML and Markdown from one source, figures as embedded PNGs).
- `run`: `Run`, the run's parameters and its stages' outputs as a section reads them.
- `comparison`: `comparison_table` and whether a published row is comparable with ours.
- `datasets`: the opening line (datasets used and what their absence left out) and section Datasets (counts,
  splits, dataset statistics).
- `training`: section Training (dvclive curves).
- `classification`: section NIH ChestX-ray14 classification.
- `localisation`: section Weakly supervised localisation (BBox_List_2017).
- `expert_labels`: section Google expert labels.
- `segmentation`: section SCR segmentation.
- `nodules`: section JSRT nodules.
- `provenance`: section Provenance (input hashes, code version, parameters).
"""
