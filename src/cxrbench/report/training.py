"""Section Training: the networks trained (what they are, how they started, what they cost) and the loss and
validation curves dvclive logged per epoch, for the models of the datasets used."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from cxrbench import artefacts
from cxrbench.report.document import Report
from cxrbench.report.run import Run


def section(report: Report, run: Run) -> None:
    report.heading("Training")
    report.table(networks_table(run), "Networks: parameters, input side, initial weights and training speed "
                                      "(items per second of training steps, measured in this run on "
                                      f"{_device(run)}: it varies between runs)")
    if "nih" in run.datasets:
        report.figure(curves_figure(run.path(artefacts.LIVE_CLASSIFIER), "NIH classifier"),
                      "NIH classifier: loss and validation AUC per epoch", "nih-training")
    if "jsrt" in run.datasets:
        report.figure(curves_figure(run.path(artefacts.LIVE_SEGMENTER), "SCR segmenter"),
                      "SCR segmenter: training loss per epoch, one model per fold", "scr-training")
        report.figure(curves_figure(run.path(artefacts.LIVE_NODULES), "JSRT nodule models"),
                      "JSRT nodule models: training loss per epoch, mean over the folds", "jsrt-training")


def networks_table(run: Run) -> pd.DataFrame:
    """One row per network trained: from models/<task>/config.json, and metrics/throughput_<task>.json."""
    rows = []

    def add(task: str, record: dict, speeds: list[float], unit: str) -> None:
        init = record["init"] if record["init"] in ("random", "imagenet") else f"ours: {record['init']}"
        rows.append({"task": task, "network": record["name"], "parameters": f"{record['parameters']:,}",
                     "input (px)": record["input_size"], "initial weights": init,
                     "training speed": f"{sum(speeds) / len(speeds):.1f} {unit}/s"})

    if "nih" in run.datasets:
        speed = run.json(artefacts.THROUGHPUT["classifier"])["per_second"]
        add("NIH classification", run.json(artefacts.MODEL_CLASSIFIER / artefacts.MODEL_CONFIG)["network"],
            list(speed.values()), "images")
    if "jsrt" in run.datasets:
        speed = run.json(artefacts.THROUGHPUT["segmenter"])["per_second"]
        add("SCR segmentation (per fold)", run.json(artefacts.MODEL_SEGMENTER / artefacts.MODEL_CONFIG)["network"],
            list(speed.values()), "images")
        nodule_models = run.json(artefacts.MODEL_NODULES / artefacts.MODEL_CONFIG)
        speed = run.json(artefacts.THROUGHPUT["nodules"])["per_second"]
        for kind, task, unit in (("classifier", "JSRT malignancy (per fold)", "ROIs"),
                                 ("heatmap", "JSRT nodule heat map (per fold)", "patches")):
            add(task, nodule_models["networks"][kind], [speed[name] for name, model in nodule_models["models"].items()
                                                        if model["kind"] == kind], unit)
    return pd.DataFrame(rows)


def _device(run: Run) -> str:
    return run.json(artefacts.THROUGHPUT["classifier" if "nih" in run.datasets else "segmenter"])["device"]


def curves_figure(directory: Path, title: str):
    """Every metric a dvclive folder logged per epoch, the learning rate left out."""
    fig, ax = plt.subplots(figsize=(4, 2.8))
    for tsv in sorted((directory / "plots" / "metrics").rglob("*.tsv")):
        name = tsv.relative_to(directory / "plots" / "metrics").with_suffix("").as_posix()
        if name == "lr":
            continue
        frame = pd.read_csv(tsv, sep="\t")
        ax.plot(frame["step"] + 1, frame[frame.columns[-1]], marker="o", label=name)
    ax.set(xlabel="epoch", title=title)
    ax.legend(fontsize=7)
    return fig
