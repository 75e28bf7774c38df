"""Compile a real model with irc (Hugging Face GPT-2 from its config class,
random weights), check it against eager PyTorch, and time it next to eager
(and torch.compile with --inductor).

    bash scripts/demo.sh                      # sets up .venv, then runs this
    python examples/quickstart.py --model llama --inductor
    python examples/quickstart.py --model GPTDecoderBlock   # a bench workload

``--model`` takes any zoo name (tests/zoo/models.py) or bench model workload.
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
from tests.zoo.models import ZOO, flat_tensors  # noqa: E402
from irc.stats import stats_of  # noqa: E402


def _load(name: str) -> tuple[torch.nn.Module, tuple, dict]:
    if name in ZOO:
        model, kwargs = ZOO[name].make()
        return model, (), kwargs
    model, inputs = WORKLOADS[name].factory()
    if not isinstance(model, torch.nn.Module):
        raise SystemExit(f"{name} is a function, not a model")
    return model, tuple(inputs), {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--model", default="gpt2", choices=[
        *ZOO, *(n for n, w in WORKLOADS.items() if w.kind == "model")])
    parser.add_argument("--inductor", action="store_true", help="also time torch.compile")
    args = parser.parse_args()

    model, inputs, kwargs = _load(args.model)
    print(f"model: {args.model} {type(model).__name__} "
          f"({sum(p.numel() for p in model.parameters()):,} parameters), target: {args.target}")
    t0 = time.perf_counter()
    fast = irc.compile(model, target=args.target, strict=True)
    with torch.no_grad():
        got = flat_tensors(fast(*inputs, **kwargs))
        compile_s = time.perf_counter() - t0
        want = flat_tensors(model(*inputs, **kwargs))
    err = max((g - w).abs().max().item() for g, w in zip(got, want))
    ok = len(got) == len(want) and all(torch.allclose(g, w, rtol=1e-3, atol=1e-3)
                                       for g, w in zip(got, want))
    stats = stats_of(fast)
    print(f"compile + first run: {compile_s:.2f} s ({stats.kernels} kernels, "
          f"{sum(stats.extern_ops.values())} library calls, nothing in eager)")
    print(f"max |irc - eager| over {len(got)} outputs = {err:.2e}  ->  "
          f"{'CORRECT' if ok else 'MISMATCH'}")

    fns = {"eager": lambda: model(*inputs, **kwargs), "irc": lambda: fast(*inputs, **kwargs)}
    if args.inductor:
        ind = torch.compile(model)
        fns["torch.compile"] = lambda: ind(*inputs, **kwargs)
    with torch.no_grad():
        medians = interleaved_medians(fns, repeats=20)
    for name, sec in medians.items():
        print(f"{name:>14}: {sec * 1e3:8.3f} ms  ({medians['eager'] / sec:.2f}x eager)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
