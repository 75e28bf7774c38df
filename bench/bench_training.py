"""Training benchmarks (issue #17): ``python -m bench.bench_training [PART ...] [--repeats N]``.

Parts (default: all):

* ``steps``: single-process training step (forward + backward + SGD step) of
  the zoo decoders, eager vs inductor vs irc (ms per step, median).
* ``optim``: the optimizer step alone on 160 parameter tensors (a 12-block
  stack of linear layers with biases and norms): ``torch.optim`` foreach,
  ``torch.optim`` single-tensor, inductor's ``torch.compile(opt.step)`` and
  ``irc.optim.compile_step`` (Adam, AdamW, SGD with momentum).
* ``ddp``: DDP training step on 2 gloo processes (127.0.0.1), eager DDP vs
  ``DistributedDataParallel(irc.compile(model))`` (ms per step, rank 0).
* ``compile``: the cold compile of one training step of each zoo decoder in a
  fresh process with empty caches, by phase: dynamo, AOTAutograd (its own
  tracing/partitioning), irc import, irc passes, LLVM (translate + JIT), and
  the rest of the first step (the first forward's and backward's run).

The DDP ranks use one thread each (two ranks share the cores). Prints one
JSON object per measurement line; the lead records idle-machine
numbers in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.harness import ROOT, interleaved_medians

DECODERS = ["gpt2", "llama", "qwen2", "bloom"]


def _lm_batch(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    from tests.zoo.models import ZOO
    model, inputs = ZOO[name].make(seed=0)
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model, {"input_ids": inputs["input_ids"]}


def _lm_loss(out: Any, ids: torch.Tensor) -> torch.Tensor:
    logits = out.logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                             ids[:, 1:].reshape(-1))


def _train_step(model: Callable[..., Any], params: list[torch.nn.Parameter],
                batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)

    def step() -> None:
        opt.zero_grad()
        _lm_loss(model(**batch), batch["input_ids"]).backward()
        opt.step()
    return step


def bench_steps(repeats: int) -> None:
    import irc
    for name in DECODERS:
        fns = {}
        for compiler in ("eager", "inductor", "irc"):
            model, batch = _lm_batch(name)
            compiled = {"eager": model, "inductor": torch.compile(model),
                        "irc": irc.compile(model)}[compiler]
            fns[compiler] = _train_step(compiled, list(model.parameters()), batch)
        times = interleaved_medians(fns, repeats=repeats)
        print(json.dumps({"part": "steps", "model": name,
                          **{k: round(v * 1e3, 3) for k, v in times.items()},
                          "irc_vs_eager": round(times["eager"] / times["irc"], 3)}), flush=True)


def _many_params() -> list[torch.nn.Parameter]:
    """160 tensors: 12 blocks of 2 linear layers (weight + bias) and 2 norms, plus 16 extra vectors."""
    torch.manual_seed(0)
    shapes: list[tuple[int, ...]] = []
    for _ in range(12):
        shapes += [(256, 64), (256,), (64, 256), (64,), (64,), (64,), (64,), (64,), (64, 64), (64,),
                   (64, 64), (64,)]
    shapes += [(64,)] * 16
    return [torch.nn.Parameter(torch.randn(s)) for s in shapes]


def bench_optim(repeats: int) -> None:
    import irc.optim
    makers: dict[str, Callable[..., torch.optim.Optimizer]] = {
        "adam": lambda ps, **kw: torch.optim.Adam(ps, lr=1e-3, **kw),
        "adamw": lambda ps, **kw: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, **kw),
        "sgd_momentum": lambda ps, **kw: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, **kw),
    }
    for name, make in makers.items():
        fns: dict[str, Callable[[], object]] = {}
        for impl in ("foreach", "single_tensor", "inductor", "irc"):
            params = _many_params()
            for p in params:
                p.grad = torch.randn_like(p)
            opt = make(params, foreach=impl != "single_tensor")
            if impl == "inductor":
                fns[impl] = torch.compile(opt.step)
            elif impl == "irc":
                fns[impl] = irc.optim.compile_step(opt)
            else:
                fns[impl] = opt.step
        times = interleaved_medians(fns, repeats=repeats)
        print(json.dumps({"part": "optim", "optimizer": name, "tensors": len(_many_params()),
                          **{k: round(v * 1e6, 1) for k, v in times.items()}, "unit": "us"}), flush=True)


# ---------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, port: int, repeats: int) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import irc
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        fns = {}
        for compiler in ("eager", "irc"):
            model, batch = _lm_batch("gpt2")
            inner = model if compiler == "eager" else irc.compile(model)
            fns[compiler] = _train_step(DDP(inner), list(model.parameters()), batch)
        # both ranks must run the same sequence of collectives: time in lock step
        for fn in fns.values():
            fn()
        results = {}
        for compiler, fn in fns.items():
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(repeats):
                fn()
            results[compiler] = (time.perf_counter() - t0) / repeats
        if rank == 0:
            print(json.dumps({"part": "ddp", "model": "gpt2", "world": 2,
                              **{k: round(v * 1e3, 3) for k, v in results.items()}}), flush=True)
    finally:
        dist.destroy_process_group()


def bench_ddp(repeats: int) -> None:
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "bench.bench_training", "--ddp-rank", str(rank),
                               "--port", str(port), "--repeats", str(repeats)], cwd=ROOT, env=env)
             for rank in range(2)]
    try:
        for proc in procs:
            proc.wait(timeout=900)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    if any(p.returncode for p in procs):
        raise RuntimeError(f"DDP ranks failed: {[p.returncode for p in procs]}")


# ---------------------------------------------------------------------------- compile time


class _PhaseTimer:
    """Wall time spent inside chosen functions (outermost call only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._depth: dict[str, int] = {}

    def wrap(self, owner: Any, attr: str, phase: str) -> None:
        original = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = self._depth.get(phase, 0)
            self._depth[phase] = depth + 1
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._depth[phase] = depth
                if depth == 0:
                    self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0
        setattr(owner, attr, timed)


def _compile_profile(name: str) -> None:
    """In this fresh process (empty caches): one cold training step by phase."""
    import torch._dynamo.backends.common as common

    import irc
    import irc.backends.llvm.backend as llvm_backend
    import irc.driver as driver
    import irc.frontends.capture as capture
    timer = _PhaseTimer()
    timer.wrap(common.AotAutograd, "__call__", "aot_forward_total")
    timer.wrap(capture, "compile_graph", "irc_total")
    timer.wrap(capture, "_import", "irc_import")
    timer.wrap(driver, "run_pipeline", "irc_passes")
    timer.wrap(llvm_backend, "translate_module", "llvm_translate")
    timer.wrap(llvm_backend, "jit_kernels", "llvm_jit")
    model, batch = _lm_batch(name)
    compiled = irc.compile(model)
    t0 = time.perf_counter()
    loss = _lm_loss(compiled(**batch), batch["input_ids"])
    forward = time.perf_counter() - t0
    irc_forward = timer.seconds.get("irc_total", 0.0)
    t1 = time.perf_counter()
    loss.backward()
    backward = time.perf_counter() - t1
    s = timer.seconds
    aot_total = s.get("aot_forward_total", 0.0)
    irc_total = s.get("irc_total", 0.0)
    phases = {
        "dynamo": forward - aot_total,
        "aot_autograd": aot_total - irc_forward,
        "irc_import": s.get("irc_import", 0.0),
        "irc_passes": s.get("irc_passes", 0.0),
        "llvm_translate": s.get("llvm_translate", 0.0),
        "llvm_jit": s.get("llvm_jit", 0.0),
        "irc_other": irc_total - sum(s.get(k, 0.0) for k in ("irc_import", "irc_passes", "llvm_translate",
                                                             "llvm_jit")),
        "backward_run_and_rest": backward - (irc_total - irc_forward),
    }
    print(json.dumps({"part": "compile", "model": name, "first_step_s": round(forward + backward, 2),
                      **{k: round(v, 2) for k, v in phases.items()}}), flush=True)


def bench_compile() -> None:
    for name in DECODERS:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, IRC_CACHE_DIR=cache, PYTHONPATH=str(ROOT),
                       TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"))
            subprocess.run([sys.executable, "-m", "bench.bench_training", "--compile-profile", name],
                           cwd=ROOT, env=env, check=True, timeout=900)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
    parser.add_argument("parts", nargs="*", help="steps, optim, ddp, compile (default: all)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--models", default=",".join(DECODERS), help="zoo decoders (comma-separated)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for the in-process parts "
                        "(on a loaded machine 2 OpenMP threads can be 100x slower than 1)")
    parser.add_argument("--ddp-rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--compile-profile", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    DECODERS[:] = args.models.split(",")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ddp_rank is not None:
        _ddp_worker(args.ddp_rank, args.port, args.repeats)
        return
    if args.compile_profile:
        _compile_profile(args.compile_profile)
        return
    parts = {"steps": lambda: bench_steps(args.repeats), "optim": lambda: bench_optim(args.repeats),
             "ddp": lambda: bench_ddp(args.repeats), "compile": bench_compile}
    for part in args.parts or list(parts):
        if part not in parts:
            parser.error(f"unknown part {part!r}; choose from {', '.join(parts)}")
        parts[part]()


if __name__ == "__main__":
    main()
