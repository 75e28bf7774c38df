"""The model zoo on irc: correct / strict / speedup vs eager / cold compile.

    python -m bench.zoo                         # every zoo model, CPU
    python -m bench.zoo --models gpt2,bert --repeats 5
    python -m bench.zoo --target cuda
    python -m bench.zoo --against inductor,onnxruntime      # + inductor and ONNX Runtime columns
    python -m bench.zoo --models resnet18,resnet,mobilenet_v2   # resnet18: bench/convnets.py

Per model (``tests/zoo/models.py``): *correct*: the compiled model matches
eager (rtol = atol = 1e-3, every output tensor) on two calls, the second on
fresh inputs; *strict*: ``irc.compile(..., strict=True)`` compiled it with no
node and no call in eager (when it does not, the model is measured compiled
without strict, and the reason is listed); *speedup*: eager median / irc
median, timed interleaved in this process (:func:`bench.harness.interleaved_medians`);
*cold compile*: seconds for ``irc.compile`` plus the first call with irc's
compile cache off (in this process, after a warm-up compile, so imports are
not counted). ``--against inductor,onnxruntime`` adds those contenders
(:mod:`bench.against`), each prepared and timed in a subprocess of its own on
the same weights and inputs (interleaved there with eager; irc and eager are
timed here with no contender in the process), with their cold compile (inductor: compile + first call in a fresh inductor
cache; ONNX Runtime: export + session + first run) and geomeans of irc over
each. ``--threads`` (default 2) is torch's, and ONNX Runtime's intra-op
thread count. Writes ``bench/results/zoo-<target>-<date>.json`` and
``bench/results/zoo-<target>-latest.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.against import AGAINST, measure_isolated
from bench.convnets import BENCH_MODELS
from bench.harness import interleaved_medians
from bench.run import RESULTS, machine
from tests.zoo.check import compare
from tests.zoo.models import ZOO

COLD = {"cache.enabled": False}
MODELS = {**ZOO, **BENCH_MODELS}


def _compile(model: torch.nn.Module, target: str, strict: bool) -> Any:
    import irc
    return irc.compile(model, target=target, strict=strict, options=COLD)


def measure(name: str, target: str, repeats: int, against: tuple[str, ...] = (),
            threads: int | None = None) -> dict[str, Any]:
    """One model's row (see the module docstring)."""
    from irc.errors import IrcError
    zoo = MODELS[name]
    model, inputs = zoo.make()
    row: dict[str, Any] = {"name": name, "family": zoo.family, "strict": True, "problems": []}
    with torch.no_grad():
        expected = model(**inputs)
        # each contender in a process of its own: preparing them in this one
        # made irc's column slower (bench/README.md, "--against")
        for other in against:
            result = measure_isolated(other, name, model, inputs, repeats,
                                      threads or torch.get_num_threads())
            if "error" in result:
                row["problems"].append(result["error"])
                continue
            row[f"{other}_ms"] = result["ms"]
            row[f"{other}_eager_ms"] = result["eager_ms"]
            row[f"{other}_cold_s"] = result["cold_s"]
            row["problems"] += result["problems"]
        t0 = time.perf_counter()
        try:
            compiled = _compile(model, target, strict=True)
            first = compiled(**inputs)
        except IrcError as err:
            row["strict"] = False
            row["problems"].append(f"strict: {type(err).__name__}: {str(err).splitlines()[0]}")
            t0 = time.perf_counter()
            compiled = _compile(model, target, strict=False)
            first = compiled(**inputs)
        row["cold_compile_s"] = time.perf_counter() - t0
        mismatches = compare(name, expected, first, 0)
        fresh = zoo.fresh_inputs(model, seed=101)
        mismatches += compare(name, model(**fresh), compiled(**fresh), 1)
        stats = compiled.irc_stats
        if stats.eager_ops or stats.eager_calls or not stats.programs:
            row["strict"] = False
            row["problems"].append(stats.summary())
        row["correct"] = not mismatches
        row["problems"] += mismatches
        row.update(graphs=stats.graphs, kernels=stats.kernels, externs=stats.externs)
        fns = {"eager": lambda: model(**inputs), "irc": lambda: compiled(**inputs)}
        medians = interleaved_medians(fns, repeats)
    row["eager_ms"] = medians["eager"] * 1e3
    row["irc_ms"] = medians["irc"] * 1e3
    row["speedup_vs_eager"] = medians["eager"] / medians["irc"]
    for other in against:
        if f"{other}_ms" in row:
            row[f"speedup_vs_{other}"] = row[f"{other}_ms"] / row["irc_ms"]
    return row


def _yes(v: bool) -> str:
    return "yes" if v else "NO"


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def against_markdown(rows: list[dict[str, Any]], against: tuple[str, ...]) -> list[str]:
    """The contenders' table: ms, irc's speedup over each, cold compiles, geomeans."""
    head = "| model | eager ms | irc ms | " + " | ".join(
        f"{a} ms | irc vs {a}" for a in against) + " | irc cold s | " + " | ".join(
        f"{a} cold s" for a in against) + " |"
    lines = ["", head, "|" + "---|" * (4 + 3 * len(against))]
    for r in rows:
        if "speedup_vs_eager" not in r:
            continue
        cells = [r["name"], f"{r['eager_ms']:.3f}", f"{r['irc_ms']:.3f}"]
        for a in against:
            cells += ([f"{r[a + '_ms']:.3f}", f"{r['speedup_vs_' + a]:.2f}x"]
                      if a + "_ms" in r else ["-", "-"])
        cells.append(f"{r['cold_compile_s']:.1f}")
        cells += [f"{r[a + '_cold_s']:.1f}" if a + "_cold_s" in r else "-" for a in against]
        lines.append("| " + " | ".join(cells) + " |")
    timed = [r for r in rows if "speedup_vs_eager" in r]
    for a in against:
        both = [r for r in timed if "speedup_vs_" + a in r]
        if not both:
            continue
        colds = sorted(r["cold_compile_s"] / r[a + "_cold_s"] for r in both if r.get(a + "_cold_s"))
        lines += ["", f"vs {a} over {len(both)} models: irc {_geomean([r['speedup_vs_' + a] for r in both]):.2f}x "
                  f"(irc {_geomean([r['speedup_vs_eager'] for r in both]):.2f}x eager, "
                  f"{a} {_geomean([r.get(a + '_eager_ms', r['eager_ms']) / r[a + '_ms'] for r in both]):.2f}x "
                  f"eager in its own process); "
                  f"median cold compile irc/{a} "
                  f"{colds[len(colds) // 2] if colds else float('nan'):.2f}."]
    return lines


def markdown(rows: list[dict[str, Any]], header: str, against: tuple[str, ...] = ()) -> str:
    lines = [header, "",
             "| model | family | correct | strict | eager ms | irc ms | vs eager | cold compile s "
             "| kernels | library calls |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | {r['family']} | error | - | - | - | - | - | - | - |")
            continue
        lines.append(f"| {r['name']} | {r['family']} | {_yes(r['correct'])} | {_yes(r['strict'])} | "
                     f"{r['eager_ms']:.3f} | {r['irc_ms']:.3f} | {r['speedup_vs_eager']:.2f}x | "
                     f"{r['cold_compile_s']:.1f} | {r['kernels']} | {r['externs']} |")
    timed = [r for r in rows if "speedup_vs_eager" in r]
    if timed:
        geo = math.exp(sum(math.log(r["speedup_vs_eager"]) for r in timed) / len(timed))
        lines += ["", f"Geomean speedup vs eager: {geo:.2f}x over {len(timed)} models; "
                  f"correct {sum(r['correct'] for r in timed)}/{len(rows)}, "
                  f"strict {sum(r['strict'] for r in timed)}/{len(rows)}."]
    if against:
        lines += against_markdown(rows, against)
    notes = [(r["name"], p) for r in rows for p in r.get("problems", []) + [r.get("error")] if p]
    if notes:
        lines += ["", "Problems:", ""] + [f"- {name}: {p}" for name, p in notes]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    """Write via a temp file + rename (a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--models", help="comma-separated zoo names (default: all)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--against", default="", help="comma-separated: inductor, onnxruntime")
    parser.add_argument("--threads", type=int, default=2, help="torch (and ORT intra-op) threads")
    parser.add_argument("--tag", default="", help="results file suffix (zoo-<target>-<tag>-...)")
    args = parser.parse_args(argv)
    names = args.models.split(",") if args.models else list(ZOO)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    against = tuple(a for a in args.against.split(",") if a)
    if any(a not in AGAINST for a in against):
        parser.error(f"--against takes {', '.join(AGAINST)}, got {args.against}")
    torch.set_num_threads(args.threads)
    import irc
    irc.compile(lambda x: x + 1, target=args.target)(torch.randn(4))  # imports, JIT warm-up
    rows = []
    for name in names:
        print(f"... {name}", flush=True)
        try:
            rows.append(measure(name, args.target, args.repeats, against, args.threads))
        except Exception as err:  # noqa: BLE001 - the table goes on; the error is listed
            rows.append({"name": name, "family": MODELS[name].family,
                         "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"})
    today = datetime.date.today().isoformat()
    header = (f"### zoo on {args.target}: {today}, {machine()}, {args.threads} threads, "
              f"median of {args.repeats} interleaved runs")
    RESULTS.mkdir(exist_ok=True)
    stem = f"zoo-{args.target}" + (f"-{args.tag}" if args.tag else "")
    _write(RESULTS / f"{stem}-{today}.json", json.dumps(
        {"date": today, "machine": machine(), "target": args.target, "repeats": args.repeats,
         "threads": args.threads, "against": list(against), "rows": rows}, indent=2))
    table = markdown(rows, header, against)
    _write(RESULTS / f"{stem}-latest.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
