"""Benchmark of the graph passes on large generated modules.

Generates ``@main`` bodies of N graph ops (default 1,000 and 10,000) with a
realistic mix: elementwise chains, reductions + broadcasts, permutes, casts,
duplicated subexpressions (also commuted), dead code, identities for
canonicalize (x*1, x+(-0.0), permute pairs, cast round trips) and constant
subgraphs. For each size it times (median of ``--repeat`` runs, each on a
freshly parsed module): parse, verify, each pass of ``dce,cse,canonicalize,
constant-fold`` in that order, and print; both CPU time (what the code costs,
little disturbed by a busy machine) and wall-clock time are recorded. Writes ``bench/results/passes.json``
and prints a markdown table.

    python bench/bench_passes.py [--sizes 1000 10000] [--repeat 3] [--profile]

``--profile`` runs cProfile over the largest size's pipeline and prints the top
functions by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import platform
import pstats
import random
import statistics
import time
from pathlib import Path

import torch
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region, SSAValue

from irc.ir import graph as g
from irc.ir.text import parse_module, print_module, verify_module
from irc.ir.types import tensor_type
from irc.passes.registry import get_pass

PASSES = ("dce", "cse", "canonicalize", "constant-fold")
ROWS, COLS = 16, 32


def generate(n_ops: int, seed: int = 0) -> ModuleOp:
    """A verified module whose @main has about ``n_ops`` graph ops."""
    rng = random.Random(seed)
    f32 = torch.float32
    t = tensor_type([ROWS, COLS], f32)
    block = Block(arg_types=[t, t, t, t])
    live: list[SSAValue] = list(block.args)
    ops: list = []

    def emit(op):
        ops.append(op)
        return op.results[0]

    def splat(value: float, shape=(ROWS, COLS)) -> SSAValue:
        return emit(g.ConstantOp(g.dense_attr(tensor_type(list(shape), f32), [value])))

    def recent() -> SSAValue:
        return live[-1 - min(int(rng.expovariate(0.3)), len(live) - 1)]

    binary = (g.AddOp, g.MulOp, g.SubOp, g.MaximumOp)
    unary = (g.TanhOp, g.NegOp, g.ReluOp, g.SigmoidOp)
    while len(ops) < n_ops:
        r = rng.random()
        if r < 0.38:
            live.append(emit(rng.choice(binary)(recent(), recent())))
        elif r < 0.52:
            live.append(emit(rng.choice(unary)(recent())))
        elif r < 0.62:                                   # duplicate, commuted for add/mul
            a, b = recent(), recent()
            cls = rng.choice((g.AddOp, g.MulOp))
            emit(cls(a, b))
            live.append(emit(cls(b, a)))
        elif r < 0.70:                                   # dead code
            emit(g.ExpOp(recent()))
        elif r < 0.76:                                   # x * 1, x + (-0.0)
            x = recent()
            y = emit(g.MulOp(x, splat(1.0)))
            live.append(emit(g.AddOp(y, splat(-0.0))))
        elif r < 0.81:                                   # permute pair
            p = emit(g.PermuteOp(recent(), [1, 0]))
            live.append(emit(g.PermuteOp(p, [1, 0])))
        elif r < 0.86:                                   # cast round trip
            c = emit(g.CastOp(recent(), tensor_type([ROWS, COLS], torch.float64)))
            live.append(emit(g.CastOp(c, t)))
        elif r < 0.92:                                   # constant subgraph
            k = emit(g.AddOp(splat(rng.uniform(-1, 1), (1, COLS)), splat(0.5, (1, COLS))))
            k = emit(g.ExpOp(k))
            live.append(emit(g.MulOp(recent(), k)))
        else:                                            # row reduction + broadcast
            s = emit(g.SumOp(recent(), [1], keepdim=True))
            live.append(emit(g.SubOp(recent(), s)))
    for op in ops:
        block.add_op(op)
    outputs = live[-4:]
    block.add_op(func.ReturnOp(*outputs))
    fn = func.FuncOp("main", ([t] * 4, [v.type for v in outputs]), Region(block))
    return ModuleOp([fn])


def count_ops(module: ModuleOp) -> int:
    return sum(1 for op in module.walk() if op.name.startswith("graph."))


class _Clock:
    """Wall-clock and CPU seconds of each timed phase."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def time(self, name: str, fn):  # noqa: ANN001, ANN202
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.wall[name] = time.perf_counter() - wall
        self.cpu[name] = time.process_time() - cpu
        return result


def time_once(text: str) -> tuple[dict[str, float], dict[str, float], int]:
    """(wall seconds, CPU seconds, graph ops left) for one parse-passes-print run."""
    clock = _Clock()
    module, source_map = clock.time("parse", lambda: parse_module(text, "bench.mlir"))
    clock.time("verify", lambda: verify_module(module, source_map))
    ctx = Context()
    for name in PASSES:
        p = get_pass(name)()
        clock.time(name, lambda: p.apply(ctx, module))
    for times in (clock.wall, clock.cpu):
        times["pipeline"] = sum(times[name] for name in PASSES)
    out = clock.time("print", lambda: print_module(module))
    return clock.wall, clock.cpu, count_ops(parse_module(out, "after.mlir")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "passes.json"))
    args = parser.parse_args()

    rows = []
    for size in args.sizes:
        module = generate(size)
        module.verify()
        text = print_module(module)
        runs = [time_once(text) for _ in range(args.repeat)]
        row: dict[str, object] = {"ops": count_ops(module), "ops_after": runs[0][2]}
        for which, times in (("cpu", [r[1] for r in runs]), ("wall", [r[0] for r in runs])):
            row[which] = {k: round(statistics.median(t[k] for t in times), 4) for k in times[0]}
        rows.append(row)

    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "repeat": args.repeat,
        "seconds (median)": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")

    cols = ["parse", "verify", *PASSES, "pipeline", "print"]
    print(f"Graph passes, {result['date']}, {result['machine']}, load average "
          f"{os.getloadavg()[0]:.1f}, median of {args.repeat}; seconds, CPU (wall)\n")
    print("| ops | ops after | " + " | ".join(cols) + " |")
    print("|---:|---:|" + "---:|" * len(cols))
    for row in rows:
        cells = [f"{row['cpu'][c]:.3f} ({row['wall'][c]:.2f})" for c in cols]  # type: ignore[index]
        print(f"| {row['ops']} | {row['ops_after']} | " + " | ".join(cells) + " |")

    if args.profile:
        module, _ = parse_module(print_module(generate(max(args.sizes))), "bench.mlir")
        profiler = cProfile.Profile()
        ctx = Context()
        profiler.enable()
        for name in PASSES:
            get_pass(name)().apply(ctx, module)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
