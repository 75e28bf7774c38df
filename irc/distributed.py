"""irc under ``torch.distributed``: what :func:`irc.compile` does with a
``DistributedDataParallel`` module (see docs/distributed.md).

``irc.compile(DistributedDataParallel(model))`` compiles the wrapped module, as
``DistributedDataParallel(irc.compile(model))`` does: DDP's own Python (bucket
bookkeeping, buffer broadcast, the reducer's hooks) stays in eager, where it
graph-breaks anyway, and the inner module is traced from irc's entry frame, so
a built-in ``torch.nn`` module inside DDP (``Sequential``) is captured too
(dynamo skips frames in ``torch.nn``, so tracing from DDP's ``forward`` would
run it in eager). Dynamo's DDPOptimizer sees the DDP module active during the
inner call and splits the graph at DDP's gradient-bucket boundaries either way.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel


def is_ddp(obj: Any) -> bool:
    """Whether ``obj`` is a ``DistributedDataParallel`` module."""
    return isinstance(obj, DistributedDataParallel)


def compile_ddp(ddp: DistributedDataParallel,
                compile_module: Callable[[torch.nn.Module], torch.nn.Module]) -> DistributedDataParallel:
    """A shallow copy of ``ddp`` whose inner ``module`` is ``compile_module(ddp.module)``.

    The copy shares the reducer, process group, buckets and parameters with
    ``ddp`` (no tensor is copied); only its ``module`` entry differs, so
    training either one updates the same parameters.
    """
    compiled = copy.copy(ddp)
    modules = dict(ddp._modules)
    modules["module"] = compile_module(ddp.module)
    vars(compiled)["_modules"] = modules
    return compiled
