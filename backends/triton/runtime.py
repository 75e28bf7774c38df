"""Runs a generated Triton module: the host schedule launcher.

Guarantees:

* The generated source is written to a real file (``<tmp>/irc-triton-<uid>/
  <sha256>.py``) and imported from there: Triton's JIT reads kernel source with
  ``inspect``, which needs a file.
* Kernels launch on the device of the tensors (CUDA, or the CPU under the
  Triton interpreter) on the current stream.
* Every call checks the inputs first (count, device, dtype, shape) and raises
  :class:`irc.InputMismatchError` naming the input and what differs. Kernels
  index with static row-major strides, so a non-contiguous input is copied to
  that layout before launch (never read with the wrong strides).
* With ``autotune`` on a real GPU, each large kernel's tiling is timed among a
  few candidates on its first launch (:mod:`autotune`).
* Matmul sites of the Triton template (:mod:`codegen_matmul`): with
  ``matmul="auto"`` on a real GPU, each site's first call times the library
  schedule (``torch.matmul`` + its consumer kernel) against the template with
  the fused epilogue and keeps the faster per shape (in memory and in the
  compile cache, like autotuned tilings); under the interpreter "auto" is the
  library schedule and nothing is timed. With ``autotune``, a large
  template's tiling is also timed among a few candidates on first launch.
* With ``cuda_graphs`` on a real GPU, the schedule is captured into a CUDA
  graph after one warm-up call and replayed on static input buffers (not
  when ``@main`` updates a cache in place: the write must reach the caller's
  tensor).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from irc.backends.triton.autotune import AUTOTUNER, Tiling, worth_tuning
from irc.backends.triton.codegen import ModulePlan, emit_module, plan_module
from irc.backends.triton.codegen_matmul import MatmulTiling, matmul_candidates
from irc.errors import BackendError, InputMismatchError
from irc.ir import graph as g
from irc.ir.interpreter import Interpreter
from irc.ir.types import dtype_of, shape_of

log = logging.getLogger("irc.triton")
# Matmul templates smaller than this (M*N*K*batch) keep their heuristic tiling.
MATMUL_TUNE_MIN_FLOP = 1 << 24


def interpreter_enabled() -> bool:
    """Whether Triton runs kernels with its CPU interpreter (TRITON_INTERPRET=1)."""
    import triton.knobs
    return bool(triton.knobs.runtime.interpret)


def source_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"irc-triton-{os.getuid()}")
    os.makedirs(path, exist_ok=True)
    return path


def load_source(source: str, interpret: bool) -> ModuleType:
    """Write ``source`` to its content-addressed file and import it."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    path = os.path.join(source_dir(), f"irc_{digest}.py")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    name = f"irc_triton_{digest}_{'i' if interpret else 'c'}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BackendError(f"cannot import generated Triton module {path}")
    module = importlib.util.module_from_spec(spec)
    import triton.knobs
    before = triton.knobs.runtime.interpret
    triton.knobs.runtime.interpret = interpret  # decides JITFunction vs InterpretedFunction
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except SyntaxError as err:  # a codegen bug: say where
        raise BackendError(f"generated Triton source {path} does not compile: {err}") from err
    finally:
        triton.knobs.runtime.interpret = before
    return module


class TritonExecutable:
    """A compiled module: call with ``@main``'s inputs, get its outputs."""

    def __init__(self, module: ModuleOp, weights: Mapping[str, torch.Tensor],
                 autotune: bool = True, cuda_graphs: bool = False,
                 interpret: bool = False, matmul: str = "auto") -> None:
        self.interpret = interpret or interpreter_enabled()
        if not self.interpret and not torch.cuda.is_available():
            raise BackendError("no CUDA device; use target=\"cpu\", or set TRITON_INTERPRET=1 "
                               "to run the Triton kernels on the CPU")
        self.device = (torch.device("cpu") if self.interpret
                       else torch.device("cuda", torch.cuda.current_device()))
        self.plan: ModulePlan = plan_module(module, self.interpret, matmul)
        self.source = emit_module(self.plan)
        self.module = load_source(self.source, self.interpret)
        self.autotune = autotune and not self.interpret
        # a graph replays on copies of the inputs: an in-place cache update
        # (graph.cache_update) must reach the caller's tensor, so no replay then
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda" and not any(
            isinstance(op, g.CacheUpdateOp) for op in self.plan.main.body.block.ops)
        self._graph: tuple[Any, list[torch.Tensor], list[torch.Tensor]] | None = None
        self._signature = [(shape_of(a.type), dtype_of(a.type))
                           for a in self.plan.main.body.block.args]
        self._tilings: dict[str, Tiling] = {k.name: k.tiling for p in self.plan.kernels.values()
                                            for k in p.kernels}
        self._tuned: set[str] = set()
        self._matmul_tilings: dict[str, MatmulTiling] = {s.name: s.tiling
                                                         for s in self.plan.matmuls}
        self.matmul_choice: dict[str, str] = {  # site -> "cublas" | "triton"
            s.name: s.mode for s in self.plan.matmuls if s.mode == "triton"}
        # bench/bench_cuda.py sets this to time each "auto" site's two schedules itself
        self.record_matmul_runs = False
        self.matmul_runs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
        self._bind(module, weights)

    def eager_kernels(self) -> list[str]:
        """The kernels the code generator could not express: they run in eager torch."""
        return [name for name, kplan in self.plan.kernels.items() if kplan.eager_reason is not None]

    def _bind(self, module: ModuleOp, weights: Mapping[str, torch.Tensor]) -> None:
        ns = self.module.__dict__
        ns["_device"] = self.device
        ns["WEIGHTS"] = {k: _on(w, self.device) for k, w in weights.items()}
        ns["CONSTANTS"] = [_on(c, self.device) for c in self.plan.constants]
        ns["HIDDEN"] = {k.name: [_on(h, self.device) for h in k.hidden]
                        for p in self.plan.kernels.values() for k in p.kernels}
        interpreter = Interpreter(module, ns["WEIGHTS"])
        eager: dict[str, Callable[..., list[torch.Tensor]]] = {}
        for name, kplan in self.plan.kernels.items():
            if kplan.eager_reason is None:
                continue
            log.warning("irc triton: %s runs in eager torch: %s", name, kplan.eager_reason)
            eager[name] = _eager_kernel(interpreter, kplan.function, kplan.spec.ops)
        ns["EAGER"] = eager
        ns["_launch"] = self._launch
        ns["HIDDEN"].update({s.name: [_on(h, self.device) for h in s.hidden]
                             for s in self.plan.matmuls})
        ns["MATMUL_CHOICE"] = self.matmul_choice
        ns["_launch_matmul"] = self._launch_matmul
        ns["_matmul"] = self._matmul

    def _launch(self, kernel: Any, name: str, *args: Any) -> None:
        tiling = self._tilings[name]
        if self.autotune and name not in self._tuned and worth_tuning(tiling):
            self._tuned.add(name)
            key = AUTOTUNER.key(self.source, name, tiling, torch.cuda.get_device_name(self.device))
            tiling = AUTOTUNER.tune(key, tiling, lambda t: kernel[(t.grid,)](*args, **t.meta()))
            self._tilings[name] = tiling
        kernel[(tiling.grid,)](*args, **tiling.meta())

    def _launch_matmul(self, kernel: Any, name: str, a: torch.Tensor, b: torch.Tensor,
                       *args: Any) -> None:
        """Launch a matmul template (operands ``[batch, rows, cols]`` with any strides)."""
        tiling = self._matmul_tilings[name]

        def run(t: MatmulTiling) -> None:
            kernel[t.grid](a, b, *a.stride(), *b.stride(), *args, **t.meta())

        if self.autotune and name not in self._tuned and \
                tiling.m * tiling.n * tiling.k * tiling.batch >= MATMUL_TUNE_MIN_FLOP:
            self._tuned.add(name)
            key = AUTOTUNER.key(self.source, f"{name}|tiling", tiling, self._device_name())
            options = {json.dumps(vars(t)): (lambda t=t: run(t)) for t in matmul_candidates(tiling)}
            tiling = MatmulTiling(**json.loads(AUTOTUNER.pick(key, options)))
            self._matmul_tilings[name] = tiling
        run(tiling)

    def _matmul(self, name: str, cublas: Callable[[], list[torch.Tensor]],
                template: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
        """An "auto" site: time both schedules once per shape, then run the faster."""
        if self.record_matmul_runs:
            self.matmul_runs[name] = (cublas, template)
        choice = self.matmul_choice.get(name)
        if choice is None:
            choice = "cublas"
            if self.device.type == "cuda" and not self.interpret:
                template()  # compiles (and tunes) the template before it is timed
                cublas()
                key = AUTOTUNER.key(self.source, f"{name}|schedule",
                                    self._matmul_tilings[name], self._device_name())
                choice = AUTOTUNER.pick(key, {"cublas": cublas, "triton": template})
            self.matmul_choice[name] = choice
            log.info("irc triton: %s runs %s", name, choice)
        return template() if choice == "triton" else cublas()

    def _device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"

    # -- calling ------------------------------------------------------------------

    def check_inputs(self, inputs: Sequence[object]) -> list[torch.Tensor]:
        """The inputs as the kernels need them, or InputMismatchError."""
        if len(inputs) != len(self._signature):
            raise InputMismatchError(f"expected {len(self._signature)} input tensors, "
                                     f"got {len(inputs)}")
        out = []
        for i, (x, (shape, dtype)) in enumerate(zip(inputs, self._signature)):
            if not isinstance(x, torch.Tensor):
                raise InputMismatchError(f"input {i}: expected a tensor, got {type(x).__name__}")
            if x.device.type != self.device.type or (
                    self.device.type == "cuda" and x.device.index not in (None, self.device.index)):
                raise InputMismatchError(f"input {i}: tensor is on {x.device}, compiled for "
                                         f"{self.device}")
            if x.dtype != dtype:
                raise InputMismatchError(f"input {i}: dtype {x.dtype}, compiled for {dtype}")
            if tuple(x.shape) != tuple(shape):
                raise InputMismatchError(f"input {i}: shape {tuple(x.shape)}, compiled for "
                                         f"{tuple(shape)}")
            out.append(x if x.is_contiguous() else x.contiguous())
        return out

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        args = self.check_inputs(inputs)
        if self.cuda_graphs:
            return self._replay(args)
        return list(self.module.main(*args))

    def _replay(self, args: list[torch.Tensor]) -> list[torch.Tensor]:
        if self._graph is None:
            outputs = list(self.module.main(*args))  # warm-up: compiles and autotunes
            torch.cuda.synchronize(self.device)
            static_in = [a.clone() for a in args]
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = list(self.module.main(*static_in))
            self._graph = (graph, static_in, static_out)
            return outputs
        graph, static_in, static_out = self._graph
        for dst, src in zip(static_in, args):
            dst.copy_(src)
        graph.replay()
        return [o.clone() for o in static_out]


def _on(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    t = t.detach() if t.requires_grad else t
    t = t.to(device)
    return t if t.is_contiguous() else t.contiguous()


def _eager_kernel(interpreter: Interpreter, function: func.FuncOp | None,
                  ops: list[Any]) -> Callable[..., list[torch.Tensor]]:
    """A kernel the codegen cannot express, run op by op with torch."""
    if function is not None:
        def run(*args: torch.Tensor) -> list[torch.Tensor]:
            return [r.contiguous() for r in interpreter.call(function, list(args))]
        return run
    op = ops[0]

    def run_op(*args: torch.Tensor) -> list[torch.Tensor]:
        return [interpreter.execute(op, list(args)).contiguous()]
    return run_op
