"""From a culprit kernel to the culprit op(s): each op of the kernel alone.

Once bisect has named a kernel, its ops are replayed in eager PyTorch on the
real tensors the kernel received in the reference run; every op is then cut
out (as a carved case) and compiled *alone* for the target, and its output is
compared with the eager one. The ops that fail alone are where to look first.
These single-op runs are not model runs (they do not count in bisect's cost).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from irc.debug.carve import CarvedCase, RecordingInterpreter, op_case
from irc.debug.carved_tests import compare_all
from irc.debug.offload import KernelMigrator, ModelMigrator
from irc.errors import IrcError
from irc.frontends.program import Program


@dataclass
class OpVerdict:
    """One op of a kernel, compiled alone for the target."""

    case: CarvedCase
    passed: bool
    max_abs: float
    max_rel: float
    error: str | None = None


def run_op_alone(case: CarvedCase, migrator: KernelMigrator | ModelMigrator) -> OpVerdict:
    """Compile the case's single-op module for the migrator's target and compare."""
    from irc.driver import compile_program
    try:
        executable = compile_program(Program(case.module.clone(), {}), migrator.target,
                                     migrator.config)
        outputs = list(executable(*[t.clone() for t in case.inputs]))
    except IrcError as err:
        return OpVerdict(case, False, math.inf, math.inf, f"{type(err).__name__}: {err}")
    except Exception as err:  # noqa: BLE001 - a crashing backend is a finding
        return OpVerdict(case, False, math.inf, math.inf, f"crashed: {type(err).__name__}: {err}")
    ok, max_abs, max_rel, why = compare_all(outputs, case.outputs, case.rtol, case.atol)
    return OpVerdict(case, ok, max_abs, max_rel, why)


def narrow_kernel(migrator: KernelMigrator | ModelMigrator, kernel: str,
                  kernel_inputs: Sequence[torch.Tensor]) -> list[OpVerdict]:
    """Every computing op of ``kernel`` (constants and weights aside), in order,
    run alone on the target with the tensors it saw in the eager run."""
    fn = migrator.kernels[kernel]
    program = migrator.program_of(kernel)
    interp = RecordingInterpreter(program.module, program.weights, kernels=False)
    with torch.no_grad():
        interp.call(fn, list(kernel_inputs))
    verdicts = []
    for i, (op, args, results) in enumerate(interp.records):
        case = op_case(op, args, results)
        case.id = f"{i + 1:04d}_{op.name.split('.')[-1]}"
        verdicts.append(run_op_alone(case, migrator))
    return verdicts
