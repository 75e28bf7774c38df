"""LLM decode on the CPU: eager, inductor, irc float32 / int8 / int4.

A ~100M-parameter Llama built from ``LlamaConfig`` (random weights), batch 1,
a 128-token prompt, 128 new tokens, greedy, ``transformers``' static KV cache
(``cache_implementation="static"``; the compiled variants replace
``model.forward``). Each mode runs in a fresh process, so its peak resident
memory (``ru_maxrss``) is its own. Per mode:

* prefill: seconds of the first forward call of ``generate`` (the prompt);
* decode tokens/s: 1 / the median seconds of the later forward calls (one
  token each; ``generate``'s own per-token work outside ``forward`` is not
  counted);
* compile: the first generate's forward seconds over a steady one's (prefill
  and decode graphs; irc's compile cache is off);
* weight bandwidth: bytes of weights one decode step reads (every linear
  layer's weight at its stored width, plus scales) x tokens/s, as a fraction
  of the copy bandwidth measured here (256 MiB copied into a touched buffer:
  read + write);
* agreement: whether the greedy tokens equal eager's (quantized modes differ
  by design; ``python -m irc.quant_report`` measures by how much).

The float weights of the model object stay alive in every mode (the caller
owns them), so a quantized mode's peak RSS is the float model plus irc's
quantized copy; irc itself keeps no float copy of a quantized weight.

    python -m bench.bench_llm               # the issue's settings
    python -m bench.bench_llm --quick       # a small model, to check it runs
"""


from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

MODES = ("eager", "inductor", "irc-f32", "irc-int8", "irc-int4")
FULL = dict(hidden=768, layers=12, intermediate=2048, heads=12, kv_heads=12, vocab=8192,
            prompt=128, new=128)
QUICK = dict(hidden=128, layers=2, intermediate=256, heads=4, kv_heads=2, vocab=1024,
             prompt=16, new=8)


@dataclass
class Row:
    mode: str
    params_m: float
    prefill_s: float
    decode_tok_s: float
    compile_s: float
    peak_rss_mib: float
    weight_mib_per_token: float
    weight_gb_s: float
    copy_gb_s: float
    rss_after_mib: float = 0.0
    """Resident memory after the runs (garbage collected, freed heap pages
    returned): what stays, without the compile's transient peak."""
    tokens_equal_eager: bool | None = None
    tokens: list[int] | None = None


def build(size: dict[str, int], seed: int = 0) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(hidden_size=size["hidden"], num_hidden_layers=size["layers"],
                         intermediate_size=size["intermediate"],
                         num_attention_heads=size["heads"], num_key_value_heads=size["kv_heads"],
                         vocab_size=size["vocab"], max_position_embeddings=2 * (size["prompt"]
                                                                                + size["new"]))
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def weight_bytes_per_token(model: torch.nn.Module, mode: str) -> int:
    """Bytes of weights one decode step reads: each linear weight at its width."""
    total = 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear):
            n, k = mod.weight.shape
            if mode == "irc-int8":
                total += n * k + 4 * n
            elif mode == "irc-int4":
                total += n * ((k + 1) // 2) + 4 * n * -(-k // 64)
            else:
                total += 4 * n * k
    return total


def copy_bandwidth() -> float:
    """Bytes per second of copying 256 MiB into a buffer allocated and touched
    beforehand (``dst.copy_(src)``, read + write counted; a fresh ``clone``
    would also time the page faults of its new allocation)."""
    x = torch.ones(64 << 20)
    dst = torch.empty_like(x)
    dst.copy_(x)
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        dst.copy_(x)
        samples.append(time.perf_counter() - t)
    return 2 * x.numel() * 4 / min(samples)


def _compiled(model: torch.nn.Module, mode: str) -> None:
    import irc
    if mode == "inductor":
        model.forward = torch.compile(model.forward)  # type: ignore[method-assign]
    elif mode.startswith("irc"):
        quant = {"irc-int8": "int8", "irc-int4": "int4"}.get(mode, "none")
        model.forward = irc.compile(model.forward, options={  # type: ignore[method-assign]
            "cache.enabled": False, "quantize.weights": quant})


def run_mode(mode: str, size: dict[str, int], repeats: int) -> Row:
    """One mode, in this process."""
    import warnings
    warnings.filterwarnings("ignore")
    model = build(size)
    params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, size["vocab"], (1, size["prompt"]), generator=torch.Generator().manual_seed(1))
    _compiled(model, mode)

    inner = model.forward
    generate_tokens: Callable[..., torch.Tensor] = getattr(model, "generate")  # transformers'
    steps: list[float] = []

    def timed(*a: object, **k: object) -> object:  # the forward calls generate makes
        t = time.perf_counter()
        out = inner(*a, **k)
        steps.append(time.perf_counter() - t)
        return out
    model.forward = timed  # type: ignore[method-assign]

    def generate() -> tuple[torch.Tensor, list[float]]:
        steps.clear()
        with torch.no_grad():
            out = generate_tokens(ids, max_new_tokens=size["new"], min_new_tokens=size["new"],
                                 do_sample=False, cache_implementation="static", pad_token_id=0)
        return out, list(steps)

    tokens, first = generate()
    prefill, decode, total = [], [], []
    for _ in range(repeats):
        _, times = generate()
        prefill.append(times[0])
        decode.extend(times[1:])
        total.append(sum(times))
    tok_s = 1 / statistics.median(decode)
    wbytes = weight_bytes_per_token(model, mode)
    gc.collect()
    rss_after = _resident_bytes() / 2**20
    return Row(mode, params / 1e6, statistics.median(prefill), tok_s,
               max(sum(first) - statistics.median(total), 0.0),
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, wbytes / 2**20,
               wbytes * tok_s / 1e9, copy_bandwidth() / 1e9, rss_after_mib=rss_after,
               tokens=tokens[0, size["prompt"]:].tolist())


def _resident_bytes() -> int:
    """This process's resident memory now (``/proc/self/statm``), after
    handing freed heap pages back to the system (glibc ``malloc_trim``: the
    compile's transient buffers are freed but would stay resident)."""
    import ctypes
    import os
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the number includes freed heap pages
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def table(rows: list[Row]) -> str:
    eager = next((r for r in rows if r.mode == "eager"), None)
    lines = ["| mode | params M | prefill s | decode tok/s | vs eager | compile s | peak RSS MiB "
             "| RSS after MiB | weights MiB/token | weight GB/s | of copy BW | tokens = eager |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        speed = f"{r.decode_tok_s / eager.decode_tok_s:.2f}x" if eager else "-"
        lines.append(f"| {r.mode} | {r.params_m:.1f} | {r.prefill_s:.3f} | {r.decode_tok_s:.1f} | "
                     f"{speed} | {r.compile_s:.1f} | {r.peak_rss_mib:.0f} | {r.rss_after_mib:.0f} | "
                     f"{r.weight_mib_per_token:.1f} | {r.weight_gb_s:.2f} | "
                     f"{100 * r.weight_gb_s / r.copy_gb_s:.0f}% | "
                     f"{_yes_no(r.tokens_equal_eager)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small model and few tokens")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    torch.set_num_threads(args.threads)
    if args.child:
        print("ROW " + json.dumps(asdict(run_mode(args.child, size, args.repeats))))
        return 0
    rows = []
    for mode in args.modes.split(","):
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r} (modes: {', '.join(MODES)})")
        cmd = [sys.executable, "-m", "bench.bench_llm", "--child", mode, "--repeats",
               str(args.repeats), "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
        done = subprocess.run(cmd, capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
        line = next((s for s in done.stdout.splitlines() if s.startswith("ROW ")), None)
        if line is None:
            print(f"{mode}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        rows.append(Row(**json.loads(line[4:])))
        print(f"{mode}: {line[4:]}", file=sys.stderr, flush=True)  # partial results survive
    eager = next((r for r in rows if r.mode == "eager"), None)
    for r in rows:
        if eager is not None and r.tokens is not None:
            r.tokens_equal_eager = r.tokens == eager.tokens
    print(f"# LLM decode, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{args.threads} threads, torch {torch.__version__}, size {size}")
    print(table(rows))
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(r) for r in rows], indent=1))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
