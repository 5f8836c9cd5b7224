"""Phantom chest radiographs written in the real datasets' on-disk formats (the embedded default).

- `jsrt_scr.write_jsrt_scr`: JSRT raw images with CLNDAT/CNNDAT tables, and the SCR masks and landmarks.
- `nih.write_nih`: NIH ChestX-ray14 PNGs, Data_Entry_2017_v2020.csv, BBox_List_2017.csv, split lists.
- `google_labels.write_google_labels`: Google's four-findings and all-findings expert label files for those PNGs.

Same arguments and seed, same bytes. Each writer fills a new (or empty) directory; the caller moves
the finished directory into place. Import the writer's module: this package re-exports nothing, so a stage
that writes one dataset does not depend on (and rerun for) the code of the others.
"""
