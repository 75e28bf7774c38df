"""``irc test-carved DIR --target T``: run carved cases alone on a backend.

Prints one row per case (id, op, source line, max abs/rel error, PASS/FAIL);
exits 1 if any case fails or a file of the folder is missing or corrupted.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="a folder written by `irc carve`")
    parser.add_argument("--target", default="cpu", help="backend to test (default: cpu)")
    parser.add_argument("--case", action="append", default=None, metavar="ID",
                        help="run only this case (repeatable)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE.py",
                        help="import this file first (e.g. to register a test backend)")


def run(args: argparse.Namespace) -> int:
    from irc.cli_carve import import_plugin
    from irc.debug.carved_tests import format_table, run_carved
    for plugin in args.plugin:
        import_plugin(plugin)
    results = run_carved(args.folder, args.target, args.case)
    print(format_table(results, args.target))
    return 0 if all(r.passed for r in results) else 1
