"""``irc bisect MODULE.py:factory --target T``: the first kernel that breaks a model.

Migrates the model's kernels to T a prefix at a time (binary search), names the
first one whose migration moves the output out of tolerance, with its source
lines, IR and generated code; ``--html`` writes a self-contained report page and
``--case-dir`` a carved test case reproducing the culprit alone. Exit status:
0 when every kernel migrates within tolerance, 1 when a culprit is found.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from irc.errors import IrcError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODULE.py:factory",
                        help="a Python file and a function in it returning (model, example_inputs)")
    parser.add_argument("--target", default="cpu", help="backend to migrate to (default: cpu)")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    parser.add_argument("--html", metavar="FILE", default=None, help="write an HTML report")
    parser.add_argument("--case-dir", metavar="DIR", default=None,
                        help="write a carved test case reproducing the culprit kernel")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE.py",
                        help="import this file first (e.g. to register a test backend)")


def run(args: argparse.Namespace) -> int:
    from irc.cli_carve import import_plugin, make_model
    from irc.debug.bisect import bisect
    for plugin in args.plugin:
        import_plugin(plugin)
    model, inputs, _ = make_model(args.model)
    report = bisect(model, inputs, target=args.target, rtol=args.rtol, atol=args.atol,
                    case_dir=args.case_dir)
    print(report.to_text(), end="")
    if args.html:
        try:
            Path(args.html).write_text(report.to_html())
        except OSError as err:
            raise IrcError(f"cannot write {args.html}: {err.strerror}") from None
        print(f"HTML report: {args.html}")
    return 1 if report.culprit is not None else 0

