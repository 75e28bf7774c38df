"""The backend contract: every code generator, in tree or plugin, is one.

A backend names the IR level it consumes (``graph``: after the graph passes;
``kernel``: after ``fuse``, a host function calling outlined kernel functions;
``loops``: after ``lower-to-loops``, bufferised scf/memref/arith), owns the
pass pipeline that brings a graph module there (``pipeline``: pass text per
stage, overridable by the configuration), declares its options as a
dataclass, and turns a module at that level into something that runs. ``supports`` lets the partitioner leave ops it cannot take to eager.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Protocol

import torch
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation

from irc.passes.pipeline import DEFAULT_STAGES


class Level(str, enum.Enum):
    """The IR level a backend consumes."""

    GRAPH = "graph"
    KERNEL = "kernel"
    LOOPS = "loops"


@dataclass(frozen=True)
class BackendOptions:
    """Options common to all backends (subclass to add your own)."""


class Executable(Protocol):
    """What a backend returns: call with the entry's inputs, get its outputs."""

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]: ...


class Backend(ABC):
    """Subclass, set ``name`` and ``level``, implement ``compile``."""

    name: ClassVar[str]
    level: ClassVar[Level]
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    description: ClassVar[str] = ""
    symbolic_shapes: ClassVar[bool] = False
    """Whether ``compile`` takes modules with symbolic sizes (``?`` dims). A
    backend that does not gets them specialised per binding of the sizes
    (:mod:`irc.symbolic_executable`)."""
    pipeline: ClassVar[Mapping[str, str]] = MappingProxyType(DEFAULT_STAGES)
    versions_weights: ClassVar[bool] = False
    """Whether the executable recomputes what it derived from a weight when the
    weight changes (identity, ``_version``, storage): then the frontend may hand
    an inference graph's parameters over as ``graph.weight`` (batch norm folded)."""
    """The passes of each stage (``graph``, ``kernel``, ``loops``) as pipeline
    text; a compile runs the stages down to ``level``
    (:meth:`irc.config.Config.pipeline_for`). Override a stage for a pass that
    only pays off on this target."""

    @abstractmethod
    def compile(self, module: ModuleOp, weights: Mapping[str, torch.Tensor],
                options: BackendOptions) -> Executable:
        """Turn ``module`` (at ``self.level``) into a callable."""

    def supports(self, op: Operation) -> bool:
        """Whether this backend can run ``op`` (default: everything)."""
        return True

    def available(self, options: BackendOptions | None = None) -> str | None:
        """None if usable here with ``options`` (the compile's, or the defaults
        when None), else a sentence saying why not (e.g. no GPU)."""
        return None
