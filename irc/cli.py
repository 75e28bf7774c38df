"""The ``irc`` command line: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module ``irc/cli_<name>.py`` exposing
``add_arguments(parser)`` and ``run(args) -> int``. User mistakes surface as
:class:`irc.errors.IrcError` and are printed without a traceback (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from irc.errors import IrcError

# name -> (module, one-line help). Modules are imported lazily so that
# `irc opt` does not pay for importing torch's dynamo, triton, etc.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "opt": ("irc.cli_opt", "run passes over a .mlir file (like mlir-opt)"),
    "translate": ("irc.cli_translate", "print a stage of a model or .mlir file"),
    "backends": ("irc.cli_backends", "list installed backends"),
    "config": ("irc.cli_config", "show the effective configuration"),
    "cache": ("irc.cli_cache", "inspect or clear the compile cache"),
    "carve": ("irc.cli_carve", "carve per-operator tests from a real model run"),
    "test-carved": ("irc.cli_test_carved", "run carved tests against a backend"),
    "bisect": ("irc.cli_bisect", "find the first kernel that breaks on a backend"),
    "profile": ("irc.cli_profile", "time a compiled model kernel by kernel (Chrome trace too)"),
    "export": ("irc.cli_export", "write a deployable package (irc.load, or C through irc_model.h)"),
}


def build_parser(names: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irc", description="irc: a compiler for PyTorch models")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if names is not None and name not in names:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    wanted = [a for a in args_list if a in SUBCOMMANDS][:1]
    try:
        parser = build_parser(wanted or None)
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help()
            return 0
        module = importlib.import_module(SUBCOMMANDS[args.command][0])
        return int(module.run(args) or 0)
    except IrcError as err:
        print(str(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `irc backends | head`: the reader went away; that is not an error.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
