"""Exported packages on the zoo: size, load time, latency (Python loader, C runner) vs the JIT.

    .venv/bin/python -m bench.bench_export [--models gpt2,bert,resnet] [--repeat 50]

Per model: package size against the weights' bytes; ``irc.load`` time in a
fresh process (import of irc + torch excluded, measured separately); the
first call (fresh process too) and the steady-state median of the loaded model, of
``irc.compile`` (the JIT path), of ``irc.compile`` with
``host_schedule="native"`` and of the C runner (``examples/c_runner``, irc's own
C library calls, no BLAS); eager for reference. Noisy on a
loaded machine: rerun on an idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
LOAD_TIMER = """
import sys, time
t0 = time.perf_counter()
import torch, irc
t1 = time.perf_counter()
m = irc.load(sys.argv[1])
t2 = time.perf_counter()
xs = {i["name"]: torch.zeros(i["shape"], dtype=getattr(torch, i["dtype"]))
      for i in m.manifest["inputs"]}
t3 = time.perf_counter()
m(**xs)
t4 = time.perf_counter()
print((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t4 - t3) * 1e3)
"""


def _median_ms(fn, repeat: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn()
    first = (time.perf_counter() - t0) * 1e3
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return first, times[len(times) // 2] * 1e3


def bench(name: str, repeat: int, tmp: Path) -> dict:
    import irc
    sys.path.insert(0, str(ROOT / "tests"))
    from zoo.models import ZOO
    model, inputs = ZOO[name].make()
    pkg = irc.export(model, inputs, tmp / f"{name}.ircpkg")
    manifest = json.loads((pkg / "manifest.json").read_text())
    size = sum(f.stat().st_size for f in pkg.iterdir())
    loads = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", LOAD_TIMER, str(pkg)], capture_output=True,
                             text=True, check=True).stdout.split()
        loads.append((float(out[0]), float(out[1]), float(out[2])))
    loaded = irc.load(pkg)
    row = {"model": name, "package_bytes": size, "weights_bytes": manifest["weights"]["bytes"],
           "import_ms": min(r[0] for r in loads), "load_ms": min(r[1] for r in loads),
           "pkg_first_ms": min(r[2] for r in loads)}  # all three in a fresh process
    with torch.no_grad():
        _, row["pkg_ms"] = _median_ms(lambda: loaded(**inputs), repeat)
        compiled = irc.compile(model, strict=True)
        compiled(**inputs)
        _, row["jit_ms"] = _median_ms(lambda: compiled(**inputs), repeat)
        _, row["eager_ms"] = _median_ms(lambda: model(**inputs), repeat)
        try:
            native = irc.compile(model, strict=True, options={"host_schedule": "native"})
            native(**inputs)
            _, row["jit_native_ms"] = _median_ms(lambda: native(**inputs), repeat)
        except irc.IrcError:
            row["jit_native_ms"] = None
    row["pkg_vs_jit"] = row["pkg_ms"] / row["jit_ms"]
    if manifest["c_abi"]["available"]:
        exe = tmp / "run_model"
        subprocess.run(["cc", "-O2", "-I", str(pkg), "-o", str(exe),
                        str(ROOT / "examples/c_runner/run_model.c"), "-ldl", "-fopenmp"], check=True)
        io = tmp / f"io_{name}"
        io.mkdir(exist_ok=True)
        for i, spec in enumerate(manifest["inputs"]):
            inputs[spec["name"]].contiguous().numpy().tofile(io / f"input_{i}.bin")
        out = subprocess.run([str(exe), str(pkg), str(io), str(repeat)], capture_output=True,
                             text=True, check=True).stdout
        row["c_ms"] = float(out.split()[1])
    else:
        row["c_ms"] = None
        row["c_abi"] = manifest["c_abi"]["reason"][:80]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", default="gpt2,bert,resnet")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="irc-bench-export-") as tmp:
        os.environ.setdefault("IRC_CACHE_DIR", str(Path(tmp) / "cache"))
        rows = [bench(name, args.repeat, Path(tmp)) for name in args.models.split(",")]
    print(f"{'model':8} {'pkg KiB':>8} {'weights':>8} {'load ms':>8} {'1st ms':>7} {'pkg ms':>7} "
          f"{'jit ms':>7} {'pkg/jit':>7} {'C ms':>7} {'jit-nat':>7} {'eager':>7}")
    for r in rows:
        c = f"{r['c_ms']:7.3f}" if r["c_ms"] is not None else "      -"
        nat = f"{r['jit_native_ms']:7.3f}" if r.get("jit_native_ms") is not None else "      -"
        print(f"{r['model']:8} {r['package_bytes'] / 1024:8.0f} {r['weights_bytes'] / 1024:8.0f} "
              f"{r['load_ms']:8.1f} {r['pkg_first_ms']:7.2f} {r['pkg_ms']:7.3f} {r['jit_ms']:7.3f} "
              f"{r['pkg_vs_jit']:7.3f} {c} {nat} {r['eager_ms']:7.3f}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
