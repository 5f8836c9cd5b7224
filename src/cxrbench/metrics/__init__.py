"""Metrics, one module each: `roc` (ROC AUC with bootstrap intervals, operating points), `overlap` (SCR
Jaccard, Dice, contour distance, pixel error), `localisation` (boxes from heat maps, IoBB/IoU), `froc`.

Import the module: this package re-exports nothing, so a stage depends on (and reruns for) the metrics it uses.
"""
