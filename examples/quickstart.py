"""Compile a GPT-style decoder block with irc, check it against eager PyTorch,
and time it next to eager (and torch.compile with --inductor).

    bash scripts/demo.sh              # sets up .venv, then runs this
    python examples/quickstart.py --target cpu --inductor
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import irc  # noqa: E402
from bench.harness import interleaved_medians  # noqa: E402
from bench.workloads import WORKLOADS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--model", default="GPTDecoderBlock", choices=[
        n for n, w in WORKLOADS.items() if w.kind == "model"])
    parser.add_argument("--inductor", action="store_true", help="also time torch.compile")
    args = parser.parse_args()

    model, inputs = WORKLOADS[args.model].factory()
    print(f"model: {args.model} ({sum(p.numel() for p in model.parameters()):,} parameters), "
          f"target: {args.target}")
    t0 = time.perf_counter()
    fast = irc.compile(model, target=args.target)
    with torch.no_grad():
        got = fast(*inputs)
        compile_s = time.perf_counter() - t0
        want = model(*inputs)
    err = (got - want).abs().max().item()
    ok = torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    print(f"compile + first run: {compile_s:.2f} s")
    print(f"max |irc - eager| = {err:.2e}  ->  {'CORRECT' if ok else 'MISMATCH'}")

    fns = {"eager": lambda: model(*inputs), "irc": lambda: fast(*inputs)}
    if args.inductor:
        ind = torch.compile(model)
        fns["torch.compile"] = lambda: ind(*inputs)
    with torch.no_grad():
        medians = interleaved_medians(fns, repeats=10)
    for name, sec in medians.items():
        print(f"{name:>14}: {sec * 1e3:8.3f} ms  ({medians['eager'] / sec:.2f}x eager)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
