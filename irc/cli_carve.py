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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

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


def _factory(spec: str) -> Callable[[], Any]:
    from irc.cli_translate import _import_file
    path_text, _, name = spec.rpartition(":")
    path = Path(path_text)
    if not path_text.endswith(".py") or not path.is_file():
        raise IrcError(f"{path_text}: error: no such Python file (from '{spec}')")
    module = _import_file(path)
    for table in ("MODELS", "ZOO"):
        entries = getattr(module, table, None)
        if isinstance(entries, dict) and name in entries:
            entry = entries[name]
            return entry.make if hasattr(entry, "make") else entry
    factory = getattr(module, name, None)
    if factory is None or not callable(factory):
        known = [k for t in ("MODELS", "ZOO") if isinstance(getattr(module, t, None), dict)
                 for k in getattr(module, t)]
        hint = f"; its MODELS/ZOO have: {', '.join(map(str, known))}" if known else ""
        raise IrcError(f"{path_text}: error: no factory named '{name}' (neither a function nor a "
                       f"key of a MODELS or ZOO dict){hint}")
    return factory


def make_model(spec: str) -> tuple[Any, tuple | dict, str]:
    """Call the factory ``file.py:NAME``: (model, example_inputs, name); the
    inputs are a tuple (positional) or a dict (keyword arguments)."""
    from irc.frontends.program import Program
    factory = _factory(spec)
    try:
        result = factory()
    except IrcError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's factory: reported, not a traceback
        raise IrcError(f"{spec}: error: calling the factory failed: {type(err).__name__}: {err}") \
            from None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise IrcError(f"{spec}: error: the factory must return (model, example_inputs), got "
                       f"{type(result).__name__}")
    model, inputs = result
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if not (callable(model) or isinstance(model, Program)) or \
            not isinstance(inputs, (tuple, list, dict)):
        raise IrcError(f"{spec}: error: the factory must return (model, example_inputs) with a "
                       "callable model (or an irc Program) and a tuple or dict of inputs")
    name = type(model).__name__ if hasattr(model, "forward") else spec.rpartition(":")[2]
    return model, (dict(inputs) if isinstance(inputs, dict) else tuple(inputs)), name


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
