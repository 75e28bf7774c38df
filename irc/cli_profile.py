"""``irc profile MODULE.py:factory``: time a compiled model kernel by kernel.

``factory()`` returns ``(model, example_inputs)`` (the loader of ``irc
translate``; ``NAME`` may be a key of the file's ``MODELS`` dict). The model is
compiled for the CPU, run ``--warmup`` then ``--runs`` times, and the report of
:func:`irc.profile.profile` is printed; ``--trace`` writes the Chrome trace
(open it in Perfetto).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODULE.py:factory",
                        help="a Python file and a function in it returning (model, example_inputs)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    parser.add_argument("--top", type=int, default=None, metavar="N",
                        help="show only the N slowest steps")
    parser.add_argument("--trace", metavar="FILE.json", default=None,
                        help="write a Chrome-trace JSON of the median run (Perfetto opens it)")


def run(args: argparse.Namespace) -> int:
    from irc.cli_carve import make_model
    from irc.profile import profile
    model, inputs, name = make_model(args.model)
    args_, kwargs = ((), inputs) if isinstance(inputs, dict) else (inputs, {})
    report = profile(model, *args_, kwargs=kwargs, runs=args.runs, warmup=args.warmup, name=name)
    print(report.table(top=args.top))
    if args.trace:
        report.write_trace(args.trace)
        print(f"trace: {args.trace} ({len(report.steps)} steps; open in https://ui.perfetto.dev)")
    return 0
