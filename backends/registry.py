"""Backends by name: the ones in the tree, in-process registrations, and
plugins found through the ``irc.backends`` entry-point group."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable

from irc.backends.base import Backend
from irc.errors import BackendError

# name -> "module:Class"; aliases map to a canonical name.
_BUILTIN: dict[str, str] = {
    "cpu": "irc.backends.llvm.backend:LLVMBackend",
    "cuda": "irc.backends.triton.backend:TritonBackend",
    "reference": "irc.backends.reference:ReferenceBackend",
}
ALIASES: dict[str, str] = {"llvm": "cpu", "triton": "cuda", "gpu": "cuda"}

_REGISTERED: dict[str, Callable[[], Backend]] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Register a backend in-process: ``irc.compile(..., target=name)`` uses it."""
    _REGISTERED[name] = factory


def backend_names() -> list[str]:
    return sorted({*_BUILTIN, *_REGISTERED})


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (or an alias of it)."""
    name = ALIASES.get(name, name)
    if name in _REGISTERED:
        return _REGISTERED[name]()
    if name in _BUILTIN:
        module_name, class_name = _BUILTIN[name].split(":")
        return getattr(importlib.import_module(module_name), class_name)()
    close = difflib.get_close_matches(name, backend_names(), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise BackendError(f"unknown target '{name}'{hint} (installed: {', '.join(backend_names())})")
