"""CUDA benchmarks: irc ``target="cuda"`` (Triton) vs eager torch vs torch.compile (inductor).

Workloads (GPU-sized): memory-bound micro kernels (a 4-op elementwise chain,
softmax in f32 and f16, layer norm, GELU, a transpose-add, a long-row sum that
needs the looped reduction) and the test models at bench sizes. Each is timed
with ``triton.testing.do_bench`` (median, ms); micro kernels also report the
achieved bandwidth next to a device-to-device copy of the same bytes (the
ceiling). irc is timed plain and with ``cuda_graphs=True``.

Matmul rows: for every ``graph.matmul`` of the models (and of a few linear +
bias + GELU layers at transformer sizes, f16 and f32), the library schedule
(``torch.matmul`` + the separate epilogue kernel) against the Triton matmul
template with the epilogue fused, each timed with do_bench, and the schedule
``matmul="auto"`` chose for that shape (its own timing, on first call).

    python bench/bench_cuda.py                      # on a CUDA machine
    python bench/bench_cuda.py --only softmax_f32 --no-inductor
    python bench/bench_cuda.py --dry-run            # no GPU: shapes, bytes, generated kernels
    python bench/bench_cuda.py --matmul-only        # only the matmul schedule rows

Writes bench/results/cuda.json and bench/results/cuda.md (``--out`` to change).
``--dry-run`` builds every workload on the CPU, prints shapes and bytes, and
generates each workload's Triton source (export -> fuse -> codegen) to check
it compiles to kernels without eager fallbacks; nothing is timed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.workloads import chain4, gelu, layer_norm, softmax  # noqa: E402  (same functions as the CPU suite)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

Factory = Callable[[], tuple[Callable[..., Tensor], tuple[Tensor, ...]]]

N = 1 << 26  # 64M elements
ROWS, COLS = 8192, 4096


@dataclass(frozen=True)
class CudaWorkload:
    name: str
    factory: Factory
    bytes_moved: int = 0  # minimum bytes read + written (micro kernels), 0 for models


def transpose_add(x: Tensor, y: Tensor) -> Tensor:
    return x.t() + y


def row_sum(x: Tensor) -> Tensor:
    return x.sum(dim=-1)


def _randn(*shape: int, dtype: torch.dtype = torch.float32) -> Callable[[], Tensor]:
    return lambda: torch.randn(*shape).to(dtype)


def _micro(fn: Callable[..., Tensor], *inputs: Callable[[], Tensor]) -> Factory:
    return lambda: (fn, tuple(i() for i in inputs))


def workloads() -> list[CudaWorkload]:
    f32, f16 = 4, 2
    rc = ROWS * COLS
    micro = [
        CudaWorkload("chain4_64M", _micro(chain4, _randn(N)), 2 * N * f32),
        CudaWorkload("softmax_f32", _micro(softmax, _randn(ROWS, COLS)), 2 * rc * f32),
        CudaWorkload("softmax_f16", _micro(softmax, _randn(ROWS, COLS, dtype=torch.float16)),
                     2 * rc * f16),
        CudaWorkload("layernorm_f32", _micro(layer_norm, _randn(ROWS, COLS), _randn(COLS),
                                             _randn(COLS)), 2 * rc * f32),
        CudaWorkload("gelu_f32", _micro(gelu, _randn(ROWS, COLS)), 2 * rc * f32),
        CudaWorkload("transpose_add_f32", _micro(transpose_add, _randn(COLS, COLS),
                                                 _randn(COLS, COLS)), 3 * COLS * COLS * f32),
        CudaWorkload("row_sum_64x1M", _micro(row_sum, _randn(64, 1 << 20)), 64 * (1 << 20) * f32),
    ]
    try:
        from bench.workloads import WORKLOADS  # the CPU bench's model sizes
        models = [CudaWorkload(w.name, w.factory) for w in WORKLOADS.values() if w.kind == "model"]
    except ImportError:
        models = []
    return micro + models


# Linear layers at transformer sizes: (M, K, N) = tokens, d_in, d_out.
LINEAR_SHAPES = [(512, 768, 3072), (512, 3072, 768), (4096, 1024, 4096), (64, 4096, 4096)]


def _linear_gelu(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return torch.nn.functional.gelu(torch.nn.functional.linear(x, w, b))


def linear_workloads() -> list[CudaWorkload]:
    out = []
    for dtype, tag in ((torch.float16, "f16"), (torch.float32, "f32")):
        for m, k, n in LINEAR_SHAPES:
            out.append(CudaWorkload(
                f"linear_gelu_{m}x{k}x{n}_{tag}",
                _micro(_linear_gelu, _randn(m, k, dtype=dtype),
                       lambda n=n, k=k, dtype=dtype: (torch.randn(n, k) / k ** 0.5).to(dtype),
                       _randn(n, dtype=dtype))))
    return out


def matmul_executable(w: CudaWorkload, interpret: bool = False) -> tuple[Any, tuple[Tensor, ...]]:
    """The workload as a TritonExecutable with ``matmul="auto"`` (plus its inputs);
    with ``interpret`` only the plan is built (no device needed)."""
    from irc.backends.triton.codegen import plan_module
    from irc.frontends.capture import export_program
    from irc.passes.pipeline import LEVEL_PIPELINES, run_pipeline
    model, inputs = w.factory()
    program = export_program(model, inputs)
    run_pipeline(program.module, LEVEL_PIPELINES["kernel"], verify_each=False)
    if interpret:  # plan as the GPU would ("auto" sites), without compiling
        return plan_module(program.module, interpret=False, matmul="auto"), inputs
    from irc.backends.triton.runtime import TritonExecutable
    exe = TritonExecutable(program.module, program.weights, matmul="auto")
    return exe, tuple(x.cuda() for x in inputs)


def site_row(w: CudaWorkload, site: Any) -> dict[str, Any]:
    """Shape facts of one matmul site (CPU-side; no timing)."""
    from irc.ir.types import dtype_of, numel, shape_of
    shape = shape_of(site.op.result.type)
    return {"workload": w.name, "site": site.name, "m": shape[-2], "n": shape[-1],
            "k": shape_of(site.op.lhs.type)[-1], "batch": numel(shape[:-2]),
            "dtype": str(dtype_of(site.op.result.type)).removeprefix("torch."),
            "epilogue": site.consumer or "-", "tiling": site.tiling.meta()}


def measure_matmuls(w: CudaWorkload) -> list[dict[str, Any]]:
    """Per matmul site: library schedule vs fused template, and auto's choice."""
    exe, inputs = matmul_executable(w)
    exe.record_matmul_runs = True
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exe(*inputs)  # first call: "auto" times and decides every site
    rows = []
    for site in exe.plan.matmuls:
        row = site_row(w, site)
        cublas, template = exe.matmul_runs[site.name]
        row["cublas_ms"] = _bench(cublas)
        row["triton_ms"] = _bench(template)
        row["tiling"] = exe._matmul_tilings[site.name].meta()  # after autotuning
        row["auto"] = exe.matmul_choice[site.name]
        row["faster"] = "triton" if row["triton_ms"] < row["cublas_ms"] else "cublas"
        rows.append(row)
    return rows


def dry_run_matmuls(selected: list[CudaWorkload]) -> list[dict[str, Any]]:
    """The matmul sites each workload would time (shapes, fused epilogue)."""
    rows = []
    for w in selected:
        plan, _ = matmul_executable(w, interpret=True)
        for site in plan.matmuls:
            row = site_row(w, site)
            rows.append(row)
            print(f"{w.name} {row['site']}: [{row['batch']}x] {row['m']}x{row['k']} @ "
                  f"{row['k']}x{row['n']} {row['dtype']}, epilogue {row['epilogue']}")
    return rows


def markdown_matmuls(rows: list[dict[str, Any]]) -> str:
    lines = ["## Matmul: torch.matmul + epilogue kernel vs Triton template with fused epilogue",
             "", "| workload | site | batch x M x N x K | dtype | epilogue | cublas ms | "
             "triton ms | triton vs cublas | auto picked |", "|---" * 9 + "|"]
    for r in rows:
        speed = f"{r['cublas_ms'] / r['triton_ms']:.2f}x" if "triton_ms" in r else "-"
        ms = [f"{r[k]:.3f}" if k in r else "-" for k in ("cublas_ms", "triton_ms")]
        lines.append(f"| {r['workload']} | {r['site']} | {r['batch']}x{r['m']}x{r['n']}x{r['k']} "
                     f"| {r['dtype']} | {r['epilogue']} | {ms[0]} | {ms[1]} | {speed} | "
                     f"{r.get('auto', '-')} |")
    return "\n".join(lines) + "\n"


def _to(device: str, model: Any, inputs: tuple[Tensor, ...]) -> tuple[Any, tuple[Tensor, ...]]:
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    return model, tuple(x.to(device) for x in inputs)


def _bench(fn: Callable[[], Any]) -> float:
    from triton.testing import do_bench
    ms = do_bench(fn, warmup=25, rep=100, return_mode="median")
    assert isinstance(ms, float)  # one time in the "median" return mode
    return ms


def measure(w: CudaWorkload, inductor: bool, graphs: bool) -> dict[str, Any]:
    import irc
    model, inputs = _to("cuda", *w.factory())
    row: dict[str, Any] = {"workload": w.name, "shapes": [list(x.shape) for x in inputs],
                           "dtypes": [str(x.dtype) for x in inputs]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = model(*inputs)
        fns: dict[str, Callable[[], Any]] = {"eager": lambda: model(*inputs)}
        if inductor:
            compiled = torch.compile(model, backend="inductor", dynamic=False)
            compiled(*inputs)
            fns["inductor"] = lambda: compiled(*inputs)
        fast = irc.compile(model, target="cuda")
        got = fast(*inputs)
        row["irc_max_abs_err"] = float((got.float() - want.float()).abs().max())
        fns["irc"] = lambda: fast(*inputs)
        if graphs:
            fast_g = irc.compile(model, target="cuda", options={"cuda_graphs": True})
            fast_g(*inputs)
            fast_g(*inputs)
            fns["irc_graphs"] = lambda: fast_g(*inputs)
        for name, fn in fns.items():
            row[f"{name}_ms"] = _bench(fn)
    if w.bytes_moved:
        src = torch.empty(w.bytes_moved // 2, dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)  # copy of the same total bytes (read half, write half)
        row["copy_ms"] = _bench(lambda: dst.copy_(src))
        for name in [k[:-3] for k in row if k.endswith("_ms")]:
            row[f"{name}_gbs"] = w.bytes_moved / row[f"{name}_ms"] / 1e6
    return row


def dry_run(selected: list[CudaWorkload]) -> list[dict[str, Any]]:
    """Shapes, bytes and generated kernels on the CPU; nothing is timed."""
    from irc.backends.triton.codegen import plan_module
    from irc.frontends.capture import export_program
    from irc.passes.pipeline import LEVEL_PIPELINES, run_pipeline
    rows = []
    for w in selected:
        model, inputs = w.factory()
        program = export_program(model, inputs)
        run_pipeline(program.module, LEVEL_PIPELINES["kernel"], verify_each=False)
        plan = plan_module(program.module, interpret=False)
        kernels = [k for p in plan.kernels.values() for k in p.kernels]
        eager = [n for n, p in plan.kernels.items() if p.eager_reason]
        row = {"workload": w.name, "shapes": [list(x.shape) for x in inputs],
               "bytes_moved": w.bytes_moved, "triton_kernels": len(kernels),
               "eager_kernels": eager,
               "tilings": [f"{k.name}: {k.tiling.kind} extent={k.tiling.extent} "
                           f"reduced={k.tiling.reduced} XBLOCK={k.tiling.xblock} "
                           f"RBLOCK={k.tiling.rblock} warps={k.tiling.num_warps}"
                           for k in kernels]}
        rows.append(row)
        print(f"{w.name}: inputs {row['shapes']}, {w.bytes_moved / 2**20:.0f} MiB moved, "
              f"{len(kernels)} Triton kernels, eager: {eager or 'none'}")
        for t in row["tilings"]:
            print(f"    {t}")
    return rows


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    cols = ["eager", "inductor", "irc", "irc_graphs", "copy"]
    present = [c for c in cols if any(f"{c}_ms" in r for r in rows)]
    lines = [header, "", "| workload | " + " | ".join(f"{c} ms" for c in present)
             + " | irc GB/s | copy GB/s | irc vs eager | irc vs inductor |",
             "|---" * (len(present) + 5) + "|"]
    for r in rows:
        ms = [f"{r[f'{c}_ms']:.3f}" if f"{c}_ms" in r else "-" for c in present]
        gbs = [f"{r[k]:.0f}" if k in r else "-" for k in ("irc_gbs", "copy_gbs")]
        vs_e = f"{r['eager_ms'] / r['irc_ms']:.2f}x" if "irc_ms" in r else "-"
        vs_i = f"{r['inductor_ms'] / r['irc_ms']:.2f}x" if "inductor_ms" in r else "-"
        lines.append(f"| {r['workload']} | " + " | ".join(ms + gbs) + f" | {vs_e} | {vs_i} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
    parser.add_argument("--only", nargs="*", help="workload names to run")
    parser.add_argument("--no-inductor", action="store_true")
    parser.add_argument("--no-graphs", action="store_true", help="skip the cuda_graphs variant")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU only: shapes, bytes and generated kernels; no timing")
    parser.add_argument("--matmul-only", action="store_true",
                        help="only the matmul rows (library vs template, auto's choice)")
    parser.add_argument("--no-matmul", action="store_true", help="skip the matmul rows")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cuda"),
                        help="output path without suffix (.json and .md are written)")
    args = parser.parse_args(argv)
    everything = workloads() + linear_workloads()
    selected = [w for w in everything if not args.only or w.name in args.only]
    if not selected:
        parser.error(f"no workload named {args.only}")
    # matmul rows: the models and the linear layers (micro kernels have no matmul)
    with_matmuls = [] if args.no_matmul else [w for w in selected if w.bytes_moved == 0]
    if not args.only:
        selected = [w for w in selected if not w.name.startswith("linear_gelu_")]
    if args.matmul_only:
        selected = []
    if args.dry_run:
        dry_run(selected)
        dry_run_matmuls(with_matmuls)
        return 0
    if not torch.cuda.is_available():
        print("bench_cuda: no CUDA device (use --dry-run on a CPU machine)", file=sys.stderr)
        return 2
    rows = []
    for w in selected:
        row = measure(w, inductor=not args.no_inductor, graphs=not args.no_graphs)
        rows.append(row)
        print(json.dumps(row), flush=True)
    matmul_rows = []
    for w in with_matmuls:
        for row in measure_matmuls(w):
            matmul_rows.append(row)
            print(json.dumps(row), flush=True)
    device = torch.cuda.get_device_name()
    import triton
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": device, "torch": torch.__version__, "triton": triton.__version__,
            "python": platform.python_version(),
            "timing": "triton.testing.do_bench median, ms"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "rows": rows, "matmul_rows": matmul_rows}, indent=2) + "\n")
    header = (f"# CUDA benchmark ({meta['date']}, {device}, torch {meta['torch']}, "
              f"triton {meta['triton']})\n\nmedian of triton.testing.do_bench; "
              "copy = device-to-device copy of the same bytes (bandwidth ceiling)")
    text = markdown(rows, header) + ("\n" + markdown_matmuls(matmul_rows) if matmul_rows else "")
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
