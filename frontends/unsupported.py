"""The error of an FX node the graph dialect cannot express.

:class:`NodeUnsupported` names the node's aten op and its user source line;
the importer (:mod:`irc.frontends.fx_importer`) raises it and the library-call
fallback (:mod:`irc.frontends.aten_extern`) decides on it. It lives apart from
both so that neither imports the other for it (no import cycle).
"""

from __future__ import annotations

import torch
import torch.fx

from irc.frontends.source_locations import describe


class NodeUnsupported(Exception):
    """``node`` cannot be expressed in the graph dialect (``reason`` says why)."""

    def __init__(self, node: torch.fx.Node, reason: str) -> None:
        self.node = node
        self.reason = reason
        super().__init__(f"{op_name(node)} at {describe(node)}: {reason}")


def op_name(node: torch.fx.Node) -> str:
    """The aten name of a call_function node (``aten.add.Tensor``)."""
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    return getattr(target, "__name__", str(target))
