"""irc as a named ``torch.compile`` backend.

    torch.compile(model, backend="irc", options={"target": "reference"})

The ``torch_dynamo_backends`` entry point (pyproject) points here, and torch
registers it when it first looks the name up; importing :mod:`irc.api` or
calling :func:`register` registers it in-process too. Importing this module
registers nothing (torch's lookup would then see a duplicate name).
Options: ``target`` (default "cpu"), ``strict`` (default False); every other
key goes to the target backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.fx

from irc.frontends.capture import make_dynamo_backend


def irc_dynamo_backend(gm: torch.fx.GraphModule, example_inputs: list[Any],
                       options: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """A dynamo backend: compile ``gm`` with irc (see module docstring for options)."""
    opts = dict(options or {})
    opts.update(kwargs)
    target = opts.pop("target", "cpu")
    strict = bool(opts.pop("strict", False))
    from irc.driver import check_target
    return make_dynamo_backend(target, check_target(target, opts), strict)(gm, example_inputs)


def register() -> None:
    """Register "irc" with dynamo's backend registry (idempotent; needed when
    the package's entry-point metadata is not installed)."""
    from torch._dynamo.backends.registry import _COMPILER_FNS, register_backend
    if "irc" not in _COMPILER_FNS:
        register_backend(irc_dynamo_backend, name="irc")
