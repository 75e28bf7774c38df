"""CPU backend micro-benchmarks: irc "cpu" vs eager torch vs torch.compile (inductor).

Workloads (float32): a 4-op elementwise chain ``((x*2+1).relu()*3)`` on 16M
elements, softmax / layer-norm / GELU over 4096x4096, and a plain copy of 16M
elements (the memory-bandwidth ceiling). Each is timed round-robin, median of
10 samples (:func:`bench.harness.interleaved_medians`), in one process.

    python bench/cpu_micro.py [--no-inductor] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.harness import interleaved_medians  # noqa: E402
from fuse_programs import build, layer_norm, scalar, softmax  # noqa: E402
from irc.driver import compile_program  # noqa: E402
from irc.frontends.program import Program  # noqa: E402
from irc.ir import graph as g  # noqa: E402

N = 1 << 24
ROWS = COLS = 4096


def chain_module():
    def body(emit, x):
        y = emit(g.AddOp(emit(g.MulOp(x, scalar(emit, 2.0))), scalar(emit, 1.0)))
        return [emit(g.MulOp(emit(g.ReluOp(y)), scalar(emit, 3.0)))]
    return build([[N]], body)


def copy_module():
    # x * 1 would be folded by canonicalize; abs keeps one load and one store per element
    return build([[N]], lambda emit, x: [emit(g.AbsOp(x))])


def softmax_module():
    return build([[ROWS, COLS]], lambda emit, x: [softmax(emit, x)])


def layernorm_module():
    return build([[ROWS, COLS], [COLS], [COLS]], lambda emit, x, w, b: [layer_norm(emit, x, w, b)])


def gelu_module():
    return build([[ROWS, COLS]], lambda emit, x: [emit(g.GeluOp(x))])


def workloads():
    x16 = torch.randn(N)
    x2 = torch.randn(ROWS, COLS)
    w, b = torch.randn(COLS), torch.randn(COLS)
    return {
        "chain (16M)": (chain_module, (x16,), lambda x: (x * 2 + 1).relu() * 3),
        "copy (16M)": (copy_module, (x16,), lambda x: x.abs()),
        "softmax 4096x4096": (softmax_module, (x2,), lambda x: torch.softmax(x, -1)),
        "layernorm 4096x4096": (layernorm_module, (x2, w, b),
                                lambda x, w, b: F.layer_norm(x, (COLS,), w, b)),
        "gelu 4096x4096": (gelu_module, (x2,), lambda x: F.gelu(x)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-inductor", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'workload':22} {'irc ms':>9} {'eager ms':>9} {'inductor ms':>12} "
          f"{'vs eager':>9} {'vs ind.':>8} {'GB/s':>7}")
    for name, (make, inputs, eager) in workloads().items():
        exe = compile_program(Program(make(), {}), "cpu")
        ref = eager(*inputs)
        got = exe(*inputs)[0]
        assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4), name
        fns = {"irc": lambda: exe(*inputs), "eager": lambda: eager(*inputs)}
        if not args.no_inductor:
            compiled = torch.compile(eager)
            compiled(*inputs)
            fns["inductor"] = lambda: compiled(*inputs)
        t = interleaved_medians(fns, repeats=10)
        nbytes = sum(x.numel() * 4 for x in inputs) + ref.numel() * 4
        ind = t.get("inductor", float("nan"))
        print(f"{name:22} {t['irc'] * 1e3:9.2f} {t['eager'] * 1e3:9.2f} {ind * 1e3:12.2f} "
              f"{t['eager'] / t['irc']:8.2f}x {ind / t['irc']:7.2f}x "
              f"{nbytes / t['irc'] / 1e9:7.1f}")
        results[name] = {k: v * 1e3 for k, v in t.items()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
