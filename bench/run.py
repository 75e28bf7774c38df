"""The benchmark suite: eager vs torch.compile (inductor) vs irc.

    python -m bench.run                 # everything, CPU
    python -m bench.run --only softmax_4096 --repeats 5
    python -m bench.run --no-compile-time   # skip the fresh-process compile timings

Latency is the median of repeated, interleaved runs in one process. Compile
times come from fresh processes: cold (empty caches) and warm (the caches the
cold run left). Writes bench/results/<target>-<date>.json, a markdown table
(bench/results/<target>-latest.md) and a bar chart (bench/results/<target>-latest.png).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.harness import compile_seconds, eager_peak_bytes, interleaved_medians
from bench.workloads import WORKLOADS, Workload

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def compile_stats(fn: Any, inputs: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """Kernel count, extern count and memory plan of the program irc.compile
    builds for this workload: the same export and default pipeline, ahead of
    time (the IR is deterministic, so this is what the compiled call runs).

    ``planned_peak_bytes`` is comparable with ``eager_peak_bytes`` (bytes of
    tensors one eager call allocates, outputs included): the plan's peak of
    per-call intermediates (buffer slots, library results such as conv
    outputs) plus the outputs made so far. ``planned_intermediate_peak_bytes``
    leaves the outputs out. ``weights_derived_bytes``: tensors computed from
    weights only (e.g. a scaled weight, rotary tables), held once per weight
    version, not per call (eager recomputes such tensors on every call).
    """
    from irc.config import Config
    from irc.ir.kernel import EXTERN_OP_NAMES, find_main, kernel_functions
    from irc.passes.memory_plan import plan_memory
    from irc.passes.pipeline import run_pipeline
    from irc.frontends.capture import export_program

    program = export_program(fn, inputs)
    run_pipeline(program.module, Config.from_options(None).pipeline_for("cpu"), verify_each=False)
    externs = sum(1 for op in find_main(program.module).body.block.ops if op.name in EXTERN_OP_NAMES)
    plan = plan_memory(program.module)  # the loops-level module: what the cpu runtime plans
    return {"kernels": len(kernel_functions(program.module)), "externs": externs,
            "planned_peak_bytes": plan.peak_with_outputs_bytes,
            "planned_intermediate_peak_bytes": plan.peak_bytes,
            "weights_derived_bytes": plan.weights_derived_bytes}


def measure(w: Workload, target: str, repeats: int, compile_time: bool) -> dict[str, Any]:
    import irc

    fn, inputs = w.factory()
    with torch.no_grad():
        expected = fn(*inputs)
        ours = irc.compile(fn, target=target)
        got = ours(*inputs)
        ok = torch.allclose(got, expected, rtol=1e-3, atol=1e-3)
        max_err = float((got - expected).abs().max()) if got.is_floating_point() else 0.0
        inductor = torch.compile(fn)
        medians = interleaved_medians({
            "eager": lambda: fn(*inputs),
            "inductor": lambda: inductor(*inputs),
            "irc": lambda: ours(*inputs),
        }, repeats=repeats)
        eager_peak = eager_peak_bytes(fn, inputs)
    stats = compile_stats(fn, inputs)
    row: dict[str, Any] = {
        "name": w.name, "kind": w.kind, "correct": bool(ok), "max_abs_err": max_err,
        "eager_ms": medians["eager"] * 1e3, "inductor_ms": medians["inductor"] * 1e3,
        "irc_ms": medians["irc"] * 1e3,
        "speedup_vs_eager": medians["eager"] / medians["irc"],
        "speedup_vs_inductor": medians["inductor"] / medians["irc"],
        "kernels": stats.get("kernels"), "externs": stats.get("externs"),
        "planned_peak_bytes": stats.get("planned_peak_bytes"),
        "planned_intermediate_peak_bytes": stats.get("planned_intermediate_peak_bytes"),
        "weights_derived_bytes": stats.get("weights_derived_bytes"),
        "eager_peak_bytes": eager_peak,
    }
    if w.bytes_moved:
        row["irc_gbps"] = w.bytes_moved / medians["irc"] / 1e9
        row["eager_gbps"] = w.bytes_moved / medians["eager"] / 1e9
    if compile_time:
        with tempfile.TemporaryDirectory() as d:
            row["irc_cold_s"] = compile_seconds(w.name, "irc", d, target)
            row["irc_warm_s"] = compile_seconds(w.name, "irc", d, target)
        with tempfile.TemporaryDirectory() as d:
            row["inductor_cold_s"] = compile_seconds(w.name, "inductor", d)
            row["inductor_warm_s"] = compile_seconds(w.name, "inductor", d)
    return row


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _mib(v: Any) -> str:
    return "-" if v is None else f"{v / 2**20:.1f}"


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, "",
             "| workload | correct | eager ms | inductor ms | irc ms | vs eager | vs inductor | "
             "kernels | irc cold s | irc warm s | inductor cold s | planned peak MiB | eager peak MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['name']} | {_fmt(r['correct'])} | {_fmt(r['eager_ms'], 3)} | "
            f"{_fmt(r['inductor_ms'], 3)} | {_fmt(r['irc_ms'], 3)} | {_fmt(r['speedup_vs_eager'])}x | "
            f"{_fmt(r['speedup_vs_inductor'])}x | {_fmt(r.get('kernels'))} | "
            f"{_fmt(r.get('irc_cold_s'))} | {_fmt(r.get('irc_warm_s'))} | "
            f"{_fmt(r.get('inductor_cold_s'))} | {_mib(r.get('planned_peak_bytes'))} | "
            f"{_mib(r.get('eager_peak_bytes'))} |")
    lines += ["", "Peaks count per-call tensors, outputs included, on both sides (irc: the "
              "memory plan; eager: tensors the call allocated); irc's weight-derived tensors "
              "are held once, not per call, and not counted."]
    models = [r for r in rows if r["kind"] == "model"]
    if models:
        geo = math.exp(sum(math.log(r["speedup_vs_eager"]) for r in models) / len(models))
        geo_i = math.exp(sum(math.log(r["speedup_vs_inductor"]) for r in models) / len(models))
        lines += ["", f"Models: geomean speedup {geo:.2f}x vs eager, {geo_i:.2f}x vs inductor."]
    copy = next((r for r in rows if r["name"] == "copy_16M"), None)
    if copy and "eager_gbps" in copy:
        lines.append(f"Copy bandwidth (eager clone): {copy['eager_gbps']:.1f} GB/s; "
                     + ", ".join(f"{r['name']} irc {r['irc_gbps']:.1f} GB/s"
                                 for r in rows if "irc_gbps" in r and r["name"] != "copy_16M"))
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [r["name"] for r in rows]
    xs = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 1.1), 4))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], [r["speedup_vs_eager"] for r in rows], width, label="irc vs eager")
    ax.bar([x + width / 2 for x in xs], [r["eager_ms"] / r["inductor_ms"] for r in rows], width,
           label="inductor vs eager")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(list(xs), names, rotation=30, ha="right")
    ax.set_ylabel("speedup over eager (higher is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--only", action="append", help="workload name (repeatable)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-compile-time", action="store_true")
    args = parser.parse_args(argv)
    names = args.only or list(WORKLOADS)
    rows = []
    for name in names:
        print(f"... {name}", flush=True)
        rows.append(measure(WORKLOADS[name], args.target, args.repeats, not args.no_compile_time))
    today = datetime.date.today().isoformat()
    header = f"### {args.target}: {today}, {machine()}"
    RESULTS.mkdir(exist_ok=True)
    stem = f"{args.target}-{today}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(
        {"date": today, "machine": machine(), "target": args.target, "rows": rows}, indent=2))
    table = markdown(rows, header)
    (RESULTS / f"{args.target}-latest.md").write_text(table)
    chart(rows, RESULTS / f"{args.target}-latest.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
