"""The one model loader of the CLI: ``file.py:NAME`` -> (model, example_inputs).

``NAME`` is a key of the file's ``MODELS`` or ``ZOO`` dict (an entry with a
``make`` method, as in ``tests/zoo/models.py``, or a function), else a function
of the file; calling it returns ``(model, example_inputs)`` with a callable
model (or an irc Program) and a tensor, a tuple of tensors, or a dict of
keyword arguments. ``irc translate``, ``carve``, ``bisect`` and ``profile`` all
load models here. Every failure of the user's file (missing, failing import,
no such factory, a factory that raises or returns something else) is an
:class:`~irc.errors.IrcError` naming it, never a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from irc.errors import IrcError

TABLES = ("MODELS", "ZOO")


def is_model_spec(text: str) -> bool:
    """``file.py:NAME`` (rather than a .mlir path)."""
    path, sep, name = text.rpartition(":")
    return bool(sep) and path.endswith(".py") and bool(name)


def import_file(path: Path) -> ModuleType:
    """Import the Python file ``path`` (its folder importable while it runs)."""
    module_name = f"_irc_model_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise IrcError(f"{path}: error: cannot import this file as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent.resolve()))  # let it import its neighbours
    try:
        spec.loader.exec_module(module)
    except IrcError:
        raise
    except BaseException as err:  # the user's file: any failure is reported, not a traceback
        if isinstance(err, KeyboardInterrupt):
            raise
        raise IrcError(f"{path}: error: importing it failed: {type(err).__name__}: {err}") from None
    finally:
        sys.path.remove(str(path.parent.resolve()))
    return module


def find_factory(spec: str) -> Callable[[], Any]:
    """The factory ``file.py:NAME`` names (a MODELS/ZOO entry wins over an
    attribute: ``models.py:MLP`` means the MLP factory, not the MLP class)."""
    path_text, _, name = spec.rpartition(":")
    path = Path(path_text)
    if not path_text.endswith(".py") or not path.is_file():
        raise IrcError(f"{path_text}: error: no such Python file (from '{spec}')")
    module = import_file(path)
    tables = {t: v for t in TABLES if isinstance(v := getattr(module, t, None), dict)}
    factory = next((table[name] for table in tables.values() if name in table), None)
    if factory is None:
        factory = getattr(module, name, None)
    else:
        factory = getattr(factory, "make", factory)
    if factory is None:
        hint = "".join(f"; {t} has: {', '.join(map(str, sorted(v)))}" for t, v in tables.items())
        raise IrcError(f"{path_text}: error: no factory named '{name}' (neither an attribute nor a "
                       f"key of a MODELS or ZOO dict){hint}")
    if not callable(factory):
        raise IrcError(f"{path_text}: error: '{name}' is a {type(factory).__name__}, not a "
                       f"function returning (model, example_inputs)")
    return factory


def make_model(spec: str) -> tuple[Any, tuple[Any, ...] | dict[str, Any], str]:
    """Call the factory ``file.py:NAME``: (model, example_inputs, name); the
    inputs are a tuple (positional) or a dict (keyword arguments)."""
    from irc.frontends.program import Program
    factory = find_factory(spec)
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
