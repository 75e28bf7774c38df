"""``irc config show``: the effective configuration and where each value came
from; ``irc config pipeline``: the exact pass pipeline a compile runs.

    irc config show                         every key, its value and its source
    irc config show --config irc.yaml --set fuse.max_ops=16
    irc config pipeline --target cuda       the pipeline irc.compile runs for cuda
    irc config show pipeline --target cpu   the same, as a key of show
    irc config show fuse.max_ops            one value

``irc opt --pass-pipeline "$(irc config pipeline --target cpu)"`` reproduces the
passes of ``irc.compile(..., target="cpu")`` exactly (with the same
``--config``/``--set``).
"""

from __future__ import annotations

import argparse

from irc.config import LEVELS, Config, Setting


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["show", "pipeline"],
                        help="show: print the effective configuration; pipeline: print the "
                             "pass pipeline a compile for --target runs")
    parser.add_argument("key", nargs="?", help="print only this key's value ('pipeline': the "
                        "whole pipeline for --level/--target)")
    parser.add_argument("--config", metavar="YAML", help="configuration file")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one value, e.g. --set fuse.max_ops=16 (repeatable)")
    parser.add_argument("--target", help="backend whose options and pipeline to show "
                        "(default: all backends; pipeline for cpu)")
    parser.add_argument("--level", choices=LEVELS, help="IR level for 'pipeline': the default "
                        "stages down to it instead of a backend's")


def run(args: argparse.Namespace) -> int:
    config = Config.from_options(None, yaml_path=args.config, sets=args.sets, target=args.target)
    if args.action == "pipeline" or args.key == "pipeline":
        print(config.pipeline_for(args.level or args.target or "cpu"))
        return 0
    if args.key is not None:
        print(_show(config.get(args.key)))
        return 0
    rows, notes = config.settings([args.target] if args.target else None)
    _print_table(rows)
    for level in LEVELS:
        print(f"# default pipeline down to level {level}: {config.pipeline_for(level)}")
    for target in [args.target] if args.target else ["cpu", "cuda"]:
        print(f"# pipeline for target {target}: {config.pipeline_for(target)}")
    for note in notes:
        print(f"# note: {note}")
    return 0


def _show(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(_show(v) for v in value)
    if value == "":
        return '""'
    return "none" if value is None else str(value)


def _print_table(rows: list[Setting]) -> None:
    cells = [(r.key, _show(r.value), r.source if r.source == "default" or r.value == r.default
              else f"{r.source}; default {_show(r.default)}") for r in rows]
    wk = max((len(c[0]) for c in cells), default=0)
    wv = max((len(c[1]) for c in cells), default=0)
    for key, value, source in cells:
        print(f"{key.ljust(wk)}  {value.ljust(wv)}  ({source})")
