"""The `cxrbench` command for people: compose parameters (more subcommands join as they land)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from cxrbench import config
from cxrbench.errors import DataError
from cxrbench.fileio import write_text


def cmd_compose(args: argparse.Namespace) -> int:
    text = config.compose_yaml(args.overrides)
    config.validate(yaml.safe_load(text), f"configs/ with overrides {args.overrides}")
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_text(args.output, text)
        print(f"wrote {args.output}" + (f" ({' '.join(args.overrides)})" if args.overrides else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxrbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    compose = sub.add_parser("compose", help="compose configs/ (+ Hydra overrides) into params.yaml")
    compose.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=tiny train.classifier.epochs=3")
    compose.add_argument("-o", "--output", default=str(Path("params.yaml")), help="output file, or - for stdout")
    compose.set_defaults(func=cmd_compose)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
