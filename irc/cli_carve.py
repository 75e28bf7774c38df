"""``irc carve MODULE.py:factory -o DIR``: per-op test cases from one real run.

``factory()`` returns ``(model, example_inputs)``; ``MODULE.py:NAME[key]``
picks ``NAME[key]`` (e.g. ``tests/models.py:MODELS[MLP]``).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from irc.errors import IrcError

_SPEC = re.compile(r"^(?P<path>.+?\.py):(?P<name>[A-Za-z_][\w]*)(\[(?P<key>[^\]]+)\])?$")


def load_factory(spec: str) -> tuple[Callable[[], Any], str]:
    """Import ``MODULE.py:factory`` (or ``MODULE.py:NAME[key]``); returns (factory, label)."""
    m = _SPEC.match(spec)
    if m is None:
        raise IrcError(f"'{spec}': expected MODULE.py:factory (e.g. tests/models.py:make_mlp)")
    path = Path(m["path"])
    if not path.is_file():
        raise IrcError(f"{path}: no such file")
    module_name = f"_irc_user_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise IrcError(f"{path}: cannot import")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - the user's module failed: say so, no traceback
        raise IrcError(f"{path}: import failed: {type(err).__name__}: {err}") from None
    finally:
        sys.path.pop(0)
    if not hasattr(module, m["name"]):
        raise IrcError(f"{path} has no attribute '{m['name']}'")
    obj = getattr(module, m["name"])
    label = m["name"]
    if m["key"] is not None:
        try:
            obj = obj[m["key"]]
        except (KeyError, TypeError, IndexError):
            raise IrcError(f"{path}:{m['name']} has no entry [{m['key']}]") from None
        label = m["key"]
    if not callable(obj):
        raise IrcError(f"{spec} is not callable (expected a factory returning (model, inputs))")
    return obj, label


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
    """Call the factory: (model, example_inputs, name)."""
    factory, label = load_factory(spec)
    try:
        made = factory()
    except Exception as err:  # noqa: BLE001
        raise IrcError(f"{spec}: the factory failed: {type(err).__name__}: {err}") from None
    if not (isinstance(made, tuple) and len(made) == 2):
        raise IrcError(f"{spec}: the factory must return (model, example_inputs)")
    model, inputs = made
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    name = type(model).__name__ if hasattr(model, "forward") else label
    return model, inputs, name


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
