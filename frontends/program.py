"""What a frontend hands to the rest of the compiler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from xdsl.dialects.builtin import ModuleOp


@dataclass
class Program:
    """A graph-level module plus the tensors it refers to.

    ``module`` has one entry ``func.func @main`` whose arguments are the user's
    tensor inputs in order and whose results are the graph's tensor outputs.
    ``weights`` maps each ``graph.weight`` name to the *live* parameter or buffer
    tensor of the model (no copy), so in-place weight updates are seen by the
    next call. ``constant_outputs`` lists outputs that are not tensors.
    """

    module: ModuleOp
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    derived: Any = None
    """A :class:`irc.passes.derived_weights.DerivedWeights` shared by the graphs
    of one ``irc.compile`` (quantized weights computed once for all of them),
    or None: this program's own."""
