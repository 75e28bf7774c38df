"""The ``reference`` backend: runs the graph level with the reference
interpreter. Slow, but it is the definition of the IR's meaning, so a model
that is right here and wrong elsewhere points at that other backend."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from xdsl.dialects.builtin import ModuleOp

from irc.backends.base import Backend, BackendOptions, Executable, Level
from irc.ir.interpreter import Interpreter


class ReferenceBackend(Backend):
    name = "reference"
    level = Level.GRAPH
    description = "the reference interpreter (eager torch op by op)"
    symbolic_shapes = True  # the interpreter binds the sizes per call

    def compile(self, module: ModuleOp, weights: Mapping[str, torch.Tensor],
                options: BackendOptions) -> Executable:
        interpreter = Interpreter(module, weights)

        def run(*inputs: torch.Tensor) -> list[torch.Tensor]:
            return interpreter.run(inputs)

        return run
