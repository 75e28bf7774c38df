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
  fresh process with empty caches (``python -m bench.train_compile_time``):
  irc by phase (dynamo, AOTAutograd's joint graph and partition, per graph
  irc import / passes / LLVM translate / LLVM object code / backend, the
  first runs), once in CPU seconds (steady on a loaded machine) and once in
  wall seconds; and inductor's first training step, wall seconds.

The DDP ranks use one thread each (two ranks share the cores). Prints one
JSON object per measurement line; the lead records idle-machine
numbers in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.harness import ROOT, interleaved_medians
from bench.train_compile_time import lm_batch as _lm_batch
from bench.train_compile_time import lm_loss as _lm_loss

DECODERS = ["gpt2", "llama", "qwen2", "bloom"]


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
                        "irc": irc.compile(model, strict=True)}[compiler]
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
            inner = model if compiler == "eager" else irc.compile(model, strict=True)
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
                               "--port", str(port), "--repeats", str(repeats)], cwd=ROOT, env=env,
                              start_new_session=True)
             for rank in range(2)]
    try:
        for proc in procs:
            proc.wait(timeout=900)
    finally:
        for proc in procs:
            try:  # the rank and its LLVM worker processes
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    if any(p.returncode for p in procs):
        raise RuntimeError(f"DDP ranks failed: {[p.returncode for p in procs]}")


# ---------------------------------------------------------------------------- compile time


def bench_compile(threads: int | None) -> None:
    """Each decoder's cold training step in fresh processes with empty caches:
    irc by phase (bench/train_compile_time.py, wall and CPU clocks), inductor's
    first step for comparison."""
    extra = ["--threads", str(threads)] if threads else []
    for name in DECODERS:
        for args in (["--cpu"], [], ["--compiler", "inductor"]):
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, IRC_CACHE_DIR=cache, PYTHONPATH=str(ROOT),
                           TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"))
                subprocess.run([sys.executable, "-m", "bench.train_compile_time", name, *args, *extra],
                               cwd=ROOT, env=env, check=True, timeout=1800)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help="steps, optim, ddp, compile (default: all)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--models", default=",".join(DECODERS), help="zoo decoders (comma-separated)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for the in-process parts "
                        "(on a loaded machine 2 OpenMP threads can be 100x slower than 1)")
    parser.add_argument("--ddp-rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    DECODERS[:] = args.models.split(",")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ddp_rank is not None:
        _ddp_worker(args.ddp_rank, args.port, args.repeats)
        return
    parts = {"steps": lambda: bench_steps(args.repeats), "optim": lambda: bench_optim(args.repeats),
             "ddp": lambda: bench_ddp(args.repeats), "compile": lambda: bench_compile(args.threads)}
    for part in args.parts or list(parts):
        if part not in parts:
            parser.error(f"unknown part {part!r}; choose from {', '.join(parts)}")
        parts[part]()


if __name__ == "__main__":
    main()
