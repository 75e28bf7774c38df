"""``irc carve MODULE.py:factory -o DIR``: per-op test cases from one real run.

``factory()`` returns ``(model, example_inputs)``; ``NAME`` may also be a key
of the file's ``MODELS`` dict (e.g. ``tests/models.py:MLP``), as in ``irc translate``.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from irc.errors import IrcError

def import_plugin(path: str) -> None:
    """Import a Python file (calling its ``register()`` if it has one), e.g. a
    file registering a test backend."""
    file = Path(path)
    spec = importlib.util.spec_from_file_location(f"_irc_plugin_{file.stem}", file)
    if spec is None or spec.loader is None or not file.is_file():
        raise IrcError(f"{path}: cannot import plugin (no such Python file)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001
        raise IrcError(f"{path}: plugin import failed: {type(err).__name__}: {err}") from None
    register = getattr(module, "register", None)
    if callable(register):
        register()


def make_model(spec: str) -> tuple[Any, tuple, str]:
    """Call the factory (the same ``file.py:NAME`` loader as ``irc translate``):
    (model, example_inputs, name)."""
    from irc.cli_translate import load_model
    model, inputs = load_model(spec)
    name = type(model).__name__ if hasattr(model, "forward") else spec.rpartition(":")[2]
    return model, tuple(inputs), name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODULE.py:factory",
                        help="a Python file and a function in it returning (model, example_inputs)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write")
    parser.add_argument("--max-cases", type=int, default=None, metavar="N",
                        help="keep the N cases most likely to go wrong (long reductions, fp16, "
                             "transcendentals, many elements)")
    parser.add_argument("--level", choices=("graph", "kernel"), default="graph",
                        help="one case per graph op (default) or per fused kernel")


def run(args: argparse.Namespace) -> int:
    from irc.debug.carve import carve
    model, inputs, name = make_model(args.model)
    result = carve(model, inputs, args.output, max_cases=args.max_cases, level=args.level,
                   model_name=name)
    print(result.summary())
    print(f"run them: irc test-carved {args.output} --target cpu   (or: pytest {args.output} --target cpu)")
    return 0
