"""The `cxrbench` command for people: compose parameters, dataset statistics (more subcommands join as they land)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from cxrbench import config
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path, write_json, write_text

# The stats commands import cxrbench.stats (pandas, matplotlib, OpenCV, pydicom) when they run, so
# `cxrbench compose` does not pay seconds of imports it never uses.


def cmd_compose(args: argparse.Namespace) -> int:
    """params.yaml, and beside it dvc.yaml with the stages of the datasets it lists."""
    text = config.compose_yaml(args.overrides)
    params = yaml.safe_load(text)
    config.validate(params, f"configs/ with overrides {args.overrides}")
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    output = Path(args.output)
    dvc_yaml = output.with_name(config.DVC_YAML.name)
    write_text(dvc_yaml, config.compose_dvc_yaml(params))
    write_text(output, text)
    print(f"wrote {output} and {dvc_yaml}" + (f" ({' '.join(args.overrides)})" if args.overrides else "")
          + f": datasets {', '.join(params['datasets'])}")
    return 0


def _write_outputs(args: argparse.Namespace, document: dict) -> None:
    if args.json:
        write_json(args.json, document)
        print(f"\nwrote {args.json}")


def cmd_stats_nih(args: argparse.Namespace) -> int:
    import pandas as pd

    from cxrbench import stats

    document, comparison = stats.describe_nih(args.metadata, args.bbox, args.split)
    statistics = document["statistics"]
    print(f"NIH ChestX-ray14 statistics of {args.metadata}\n")
    print(stats.format_nih_statistics(statistics))
    print("\n" + comparison.format())
    _write_outputs(args, document)
    if args.figure:
        table = pd.DataFrame.from_dict(statistics["cooccurrence"], orient="index")
        figure = stats.cooccurrence_figure(table, f"NIH label co-occurrence ({statistics['form']}), images")
        with atomic_path(args.figure) as tmp:
            figure.savefig(tmp, dpi=120)
        print(f"wrote {args.figure}")
    return 0


def cmd_stats_labels(args: argparse.Namespace) -> int:
    from cxrbench import label_quality

    table = label_quality.from_files(args.metadata, args.google, {"resamples": args.resamples, "alpha": 0.05},
                                     args.seed)
    print(f"NIH's labels against Google's radiologists ({args.metadata}, {args.google}); kappa with a 95% "
          f"bootstrap interval over patients ({args.resamples} resamples)\n")
    print(label_quality.format_table(table))
    _write_outputs(args, {"dataset": "nih", "label_quality": table.to_dict(orient="records")})
    return 0


def cmd_stats_jsrt(args: argparse.Namespace) -> int:
    from cxrbench import stats
    from cxrbench.datasets import jsrt

    statistics = stats.jsrt_statistics(jsrt.read_metadata(args.dir))
    print(f"JSRT statistics of {args.dir}\n")
    print(stats.format_jsrt_statistics(statistics))
    _write_outputs(args, {"dataset": "jsrt", "statistics": statistics})
    return 0


def cmd_stats_scr(args: argparse.Namespace) -> int:
    from cxrbench import stats

    if args.store:
        packed, folds = stats.scr_masks_from_store(args.store)
    else:
        packed, folds = stats.scr_masks_from_download(args.dir)
    statistics = stats.scr_statistics(packed, folds)
    print(f"SCR object areas from {args.store or args.dir}\n")
    print(stats.format_scr_statistics(statistics))
    _write_outputs(args, {"dataset": "scr", "statistics": statistics})
    return 0


def _add_stats_parser(sub: argparse._SubParsersAction) -> None:
    stats_parser = sub.add_parser("stats", help="dataset statistics (NIH, JSRT, SCR) printed and optionally as JSON")
    datasets = stats_parser.add_subparsers(dest="dataset", required=True)
    nih_parser = datasets.add_parser(
        "nih", help="NIH ChestX-ray14 metadata statistics and the comparison with the release page's co-occurrence table"
    )
    nih_parser.add_argument("--metadata", required=True, help="Data_Entry_2017.csv or Data_Entry_2017_v2020.csv (any form)")
    nih_parser.add_argument("--bbox", help="BBox_List_2017.csv: adds box counts per class")
    nih_parser.add_argument("--split", help="split table with columns image, part (e.g. data/splits/nih.csv): adds prevalence per part")
    nih_parser.add_argument("--figure", help="write the co-occurrence heat map here (.png, .pdf, .svg)")
    nih_parser.set_defaults(func=cmd_stats_nih)
    labels_parser = datasets.add_parser(
        "labels", help="NIH's NLP-mined labels against Google's radiologists: sensitivity, PPV, Cohen's kappa")
    labels_parser.add_argument("--metadata", required=True, help="Data_Entry_2017.csv or Data_Entry_2017_v2020.csv")
    labels_parser.add_argument("--google", required=True, help="the google_expert_labels/ folder")
    labels_parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    labels_parser.add_argument("--seed", type=int, default=0, help="master seed (default 0, as params.yaml)")
    labels_parser.set_defaults(func=cmd_stats_labels)
    jsrt_parser = datasets.add_parser("jsrt", help="JSRT nodules by subtlety, size, malignancy and location")
    jsrt_parser.add_argument("--dir", required=True, help="JSRT folder holding CLNDAT_EN.txt and CNNDAT_EN.TXT")
    jsrt_parser.set_defaults(func=cmd_stats_jsrt)
    scr_parser = datasets.add_parser("scr", help="SCR object areas (mm^2) per fold")
    source = scr_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", help="decoded JSRT store with masks_<S>.npy and index.csv (data/store/jsrt)")
    source.add_argument("--dir", help="SCR folder with scratch/fold{1,2}/masks/<object>/<case>.gif")
    scr_parser.set_defaults(func=cmd_stats_scr)
    for parser in (nih_parser, labels_parser, jsrt_parser, scr_parser):
        parser.add_argument("--json", help="also write the statistics as JSON here")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxrbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    compose = sub.add_parser("compose", help="compose configs/ (+ Hydra overrides) into params.yaml, and dvc.yaml "
                             "beside it with the stages of the datasets listed")
    compose.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=tiny train.classifier.epochs=3")
    compose.add_argument("-o", "--output", default=str(Path("params.yaml")), help="output file, or - for stdout")
    compose.set_defaults(func=cmd_compose)
    _add_stats_parser(sub)
    verify = sub.add_parser("verify", help="check a copy of a dataset without running the pipeline")
    verify.add_argument("dataset", choices=["jsrt", "scr", "nih", "google"])
    verify.add_argument("path", help="the folder holding your copy")
    verify.add_argument("--json", action="store_true", help="print the result as JSON (for machines)")
    verify.set_defaults(func=cmd_verify)
    score = sub.add_parser("score", help="score your model's predictions against a finished run's store and split, "
                           "as the evaluation stages score ours: NIH test scores (classifier), SCR masks (segmenter) or "
                           "JSRT nodule task scores and candidates (nodules)")
    score.add_argument("task", choices=["classifier", "segmenter", "nodules"])
    score.add_argument("predictions", help="classifier: CSV, one row per test image, columns image and "
                       "score_<label>; segmenter: .npy, (cases, 5, S, S) 0/1 masks in the store's row order, S the store's "
                       "size or SCR's 1024; "
                       "nodules: CSV, one row per case of each task, columns case, task, score")
    score.add_argument("--candidates", help="nodules: CSV of heat-map candidates, columns case, x, y (JSRT 2048 "
                       "grid), score")
    score.add_argument("--run", default=".", help="the finished run's project folder (default: here)")
    score.add_argument("--json", help="also write the metrics (the evaluation's metrics/<task>.json form) here")
    score.set_defaults(func=cmd_score)
    weights = sub.add_parser("weights", help="the published ImageNet weights params.yaml asks for: check them, or "
                             "fetch the missing ones once with --fetch (dvc import-url)")
    weights.add_argument("--fetch", action="store_true", help="download missing files with `dvc import-url`")
    weights.add_argument("--params", default="params.yaml", help="the parameters to read (default: params.yaml)")
    weights.set_defaults(func=cmd_weights)
    return parser


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit status 0 when the copy is complete and well formed, 1 when problems were found."""
    import json

    from cxrbench.verify import format_report, verify

    result = verify(args.dataset, args.path)
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else format_report(result))
    return 1 if result["problems"] else 0


def cmd_weights(args: argparse.Namespace) -> int:
    """The published ImageNet weights params.yaml asks for: present and checked, or how to get them. With --fetch,
    `dvc import-url` brings each missing file once (the one step that uses the network) and records its URL and
    checksum in a .dvc file beside it, for git."""
    import subprocess

    from cxrbench.models.pretrained import require_file

    params = config.load(args.params)
    wanted = config.imagenet_weights(params)
    if not wanted:
        print(f"{args.params}: no network starts from ImageNet weights (model.<task>.init)")
        return 0
    missing = 0
    for task, spec in wanted.items():
        if args.fetch and not Path(spec["file"]).is_file():
            print(f"{task}: {config.fetch_command(spec)}", flush=True)
            Path(spec["file"]).parent.mkdir(parents=True, exist_ok=True)
            if subprocess.run(config.fetch_command(spec).split()).returncode != 0:
                raise DataError(spec["file"], f"`{config.fetch_command(spec)}` failed (its message is above)",
                                f"download {spec['url']} yourself and set {task}.imagenet.file=PATH")
        try:
            path, digest = require_file(spec, task)
            print(f"{task}: {path} (sha256 {digest[:16]}..., {spec['url']})")
        except DataError as err:
            print(f"{task}: {err}")
            missing += 1
    return 1 if missing else 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score a model's predictions (our format) as the evaluation stage scores the run's own."""
    import json

    from cxrbench.data import score_classifier, score_nodules, score_segmenter

    if args.task == "nodules":
        if not args.candidates:
            raise SystemExit("cxrbench score nodules: give the heat-map candidates with --candidates FILE")
        metrics = score_nodules(args.predictions, args.candidates, args.run)
        print(json.dumps({"AUC": {task: metrics["classification"][task]["auc"] for task in ("nodule", "malignancy")},
                          "FROC sensitivity": metrics["froc"]["all"]["sensitivity_at_fp_per_image"]}, indent=1))
    elif args.task == "segmenter":
        metrics = score_segmenter(args.predictions, args.run)
        objects = metrics["overall"]["objects"]
        print(f"SCR at {metrics['scored_size']} px ({metrics['interpolation']}), mean over the test images of "
              f"both folds; pixel error {metrics['overall']['pixel_error']['mean']}")
        print(json.dumps({obj: {"jaccard": m["jaccard"]["mean"], "dice": m["dice"]["mean"],
                                "contour_mm": m["contour_mm"]["mean"]} for obj, m in objects.items()}, indent=1))
    else:
        metrics = score_classifier(args.predictions, args.run)
        print(f"mean AUC {metrics['mean_auc']} (95% CI {metrics['mean_auc_ci'][0]}-{metrics['mean_auc_ci'][1]}, "
              f"bootstrap over {metrics['bootstrap']['unit']}s) on {metrics['test_images']} test images")
        print(json.dumps({label: m["auc"] for label, m in metrics["per_class"].items()}, indent=1))
    if args.json:
        write_json(args.json, metrics)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
