"""``irc carve MODULE.py:factory -o DIR``: per-op test cases from one real run.

``factory()`` returns ``(model, example_inputs)``: a tuple of positional
inputs, or a dict of keyword inputs (a Hugging Face model's ``input_ids=``...).
``NAME`` may also be a key of the file's ``MODELS`` dict (e.g.
``tests/models.py:MLP``) or ``ZOO`` dict, whose entries have a ``make()``
method (``tests/zoo/models.py:gpt2``). The model is captured as
``irc.compile`` captures it (dynamo + AOTAutograd).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path


from irc import cli_models
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


make_model = cli_models.make_model  # the CLI's one model loader (irc/cli_models.py)


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
