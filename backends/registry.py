"""Backends by name: the ones in the tree, in-process registrations, and
plugins found through the ``irc.backends`` entry-point group.

Guarantees:

* Nothing is imported until a backend is needed: builtin backends are
  ``"module:Class"`` strings, and the entry-point group is scanned once, on the
  first lookup or listing (:func:`rescan_plugins` scans again, e.g. after a
  ``pip install`` in a running process).
* A broken plugin (its module fails to import, it loads something that is not
  a :class:`Backend` subclass or factory, or its factory raises) is reported by
  name with its error: in :func:`list_backends` as a row with ``error`` set,
  and as a :class:`BackendError` when it is selected. It never breaks the
  other backends.
* Precedence when names clash: in-process registration, then builtin, then
  entry point (a plugin cannot silently replace ``cpu``).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from irc.backends.base import Backend
from irc.errors import BackendError

# name -> "module:Class"; aliases map to a canonical name.
_BUILTIN: dict[str, str] = {
    "cpu": "irc.backends.llvm.backend:LLVMBackend",
    "cuda": "irc.backends.triton.backend:TritonBackend",
    "reference": "irc.backends.reference:ReferenceBackend",
}
ALIASES: dict[str, str] = {"llvm": "cpu", "triton": "cuda", "gpu": "cuda"}
ENTRY_POINT_GROUP = "irc.backends"

BackendFactory = Callable[[], Backend]

_REGISTERED: dict[str, BackendFactory] = {}
_entry_points: dict[str, importlib.metadata.EntryPoint] | None = None


@dataclass(frozen=True)
class BackendInfo:
    """One row of ``irc backends``.

    ``origin`` is ``"builtin"``, ``"in-process"`` or ``"entry point (<dist>)"``;
    ``level`` is None when the backend could not be loaded; ``error`` says why
    it is broken (None if it loads); ``unavailable`` says why it loads but
    cannot run here (None if it can).
    """

    name: str
    origin: str
    level: str | None
    description: str = ""
    error: str | None = None
    unavailable: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "broken"
        return "available" if self.unavailable is None else "unavailable"


def register_backend(name: str, factory: BackendFactory | type[Backend]) -> None:
    """Register a backend in-process: ``irc.compile(..., target=name)`` uses it.

    ``factory`` is a :class:`Backend` subclass or a zero-argument callable
    returning a Backend instance; it is called on each lookup.
    """
    if not name or not isinstance(name, str):
        raise BackendError(f"backend name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise BackendError(f"backend '{name}': factory must be a Backend subclass or a "
                           f"zero-argument callable, got {factory!r}")
    _REGISTERED[name] = factory


def rescan_plugins() -> None:
    """Forget the scanned entry points; the next lookup scans again."""
    global _entry_points
    _entry_points = None


def _plugins() -> dict[str, importlib.metadata.EntryPoint]:
    global _entry_points
    if _entry_points is None:
        found: dict[str, importlib.metadata.EntryPoint] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            found.setdefault(ep.name, ep)  # first distribution on sys.path wins
        _entry_points = found
    return _entry_points


def backend_names() -> list[str]:
    """Every backend name known (builtin, in-process, entry points)."""
    return sorted({*_BUILTIN, *_REGISTERED, *_plugins()})


def _origin(name: str) -> str:
    if name in _REGISTERED:
        return "in-process"
    if name in _BUILTIN:
        return "builtin"
    dist = _plugins()[name].dist
    return f"entry point ({dist.name if dist is not None else 'unknown distribution'})"


def _instantiate(name: str, loaded: Any, where: str) -> Backend:
    """Turn what a registration or entry point gives into a Backend instance."""
    if isinstance(loaded, Backend):
        return loaded
    if isinstance(loaded, type) and not issubclass(loaded, Backend):
        raise BackendError(f"backend '{name}' ({where}) is broken: {loaded.__module__}."
                           f"{loaded.__qualname__} is not a subclass of irc.backends.base.Backend")
    if not callable(loaded):
        raise BackendError(f"backend '{name}' ({where}) is broken: {loaded!r} is neither a "
                           f"Backend subclass nor a factory")
    try:
        backend = loaded()
    except BackendError:
        raise
    except Exception as err:
        raise BackendError(f"backend '{name}' ({where}) is broken: its factory raised "
                           f"{type(err).__name__}: {err}") from err
    if not isinstance(backend, Backend):
        raise BackendError(f"backend '{name}' ({where}) is broken: its factory returned "
                           f"{type(backend).__name__}, not a Backend")
    return backend


def _load(name: str) -> Any:
    """The class or factory behind ``name`` (imports its module)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        module_name, class_name = _BUILTIN[name].split(":")
        try:
            return getattr(importlib.import_module(module_name), class_name)
        except Exception as err:
            raise BackendError(f"backend '{name}' (builtin) is broken: {type(err).__name__}: "
                               f"{err}") from err
    ep = _plugins()[name]
    try:
        return ep.load()
    except Exception as err:
        raise BackendError(f"backend '{name}' ({_origin(name)}, {ep.value}) is broken: "
                           f"{type(err).__name__}: {err}") from err


def canonical_name(name: str) -> str:
    """``llvm`` -> ``cpu``; other names are returned unchanged."""
    return ALIASES.get(name, name)


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (or an alias of it); BackendError if unknown
    or broken."""
    name = canonical_name(name)
    if name in _REGISTERED or name in _BUILTIN or name in _plugins():
        return _instantiate(name, _load(name), _origin(name))
    close = difflib.get_close_matches(name, [*backend_names(), *ALIASES], n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise BackendError(f"unknown target '{name}'{hint} (installed: {', '.join(backend_names())})")


def backend_info(name: str) -> BackendInfo:
    """Load ``name`` and describe it; a broken backend gives a row with ``error``."""
    name = canonical_name(name)
    origin = _origin(name)
    try:
        backend = get_backend(name)
    except BackendError as err:
        return BackendInfo(name, origin, None, error=str(err))
    try:
        unavailable = backend.available()
    except Exception as err:  # available() itself failing is a plugin bug: report it
        return BackendInfo(name, origin, None, error=f"backend '{name}' is broken: available() "
                                                     f"raised {type(err).__name__}: {err}")
    level = getattr(backend.level, "value", str(backend.level))
    return BackendInfo(name, origin, level, backend.description, unavailable=unavailable)


def list_backends() -> list[BackendInfo]:
    """One :class:`BackendInfo` per installed backend, sorted by name."""
    return [backend_info(name) for name in backend_names()]
