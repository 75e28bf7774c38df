"""OpInfo coverage: every entry of PyTorch's ``op_db`` through irc, strict.

    python -m bench.opinfo                       # 2 samples per op, cpu and reference
    python -m bench.opinfo --samples 1 --targets cpu --only sort,topk

Prints the count per category (see ``tests/opinfo_cases.py``: compiled
strict, eager fallback, unsupported dtype, internal error, mismatch,
skipped) for each target, the ops of every category but ``compiled``, and
writes ``bench/results/opinfo-<date>.json`` and ``bench/results/opinfo-latest.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.opinfo", description=str(__doc__).split("\n")[0])
    parser.add_argument("--samples", type=int, default=2, help="samples per op (default 2)")
    parser.add_argument("--targets", default="cpu,reference", help="comma-separated targets")
    parser.add_argument("--only", default="", help="comma-separated op names (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import torch
    from opinfo_cases import CATEGORIES, case_name, classify, op_db

    targets = tuple(t for t in args.targets.split(",") if t)
    only = {n for n in args.only.split(",") if n}
    ops = [op for op in op_db() if not only or op.name in only or case_name(op) in only]
    outcomes: dict[str, list[dict[str, str | float]]] = {t: [] for t in targets}
    warnings.simplefilter("ignore")
    for i, op in enumerate(ops):
        result = classify(op, args.samples, targets)
        for t, o in result.items():
            outcomes[t].append({"op": o.name, "category": o.category, "detail": o.detail,
                                "seconds": round(o.seconds, 3)})
        cats = " ".join(f"{t}={o.category}" for t, o in result.items())
        seconds = next(iter(result.values())).seconds
        print(f"[{i + 1}/{len(ops)}] {case_name(op)}: {cats} ({seconds:.2f} s)", file=sys.stderr,
              flush=True)
    today = datetime.date.today().isoformat()
    lines = [f"# OpInfo coverage, {today}", "",
             f"`python -m bench.opinfo --samples {args.samples}` (torch {torch.__version__}, "
             f"{len(ops)} op_db entries)", "",
             "| target | " + " | ".join(CATEGORIES) + " | strict fraction |",
             "|---|" + "---|" * (len(CATEGORIES) + 1)]
    for t in targets:
        counts = Counter(o["category"] for o in outcomes[t])
        judged = len(ops) - counts["skipped"]
        frac = counts["compiled"] / max(judged, 1)
        lines.append(f"| {t} | " + " | ".join(str(counts[c]) for c in CATEGORIES)
                     + f" | {frac:.1%} |")
    lines.append("")
    for t in targets:
        for c in CATEGORIES:
            if c == "compiled":
                continue
            items = [o for o in outcomes[t] if o["category"] == c]
            if items:
                lines.append(f"## {t}: {c} ({len(items)})")
                lines.append("")
                lines.extend(f"- `{o['op']}`: {o['detail']}" for o in items)
                lines.append("")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        _write(RESULTS / f"opinfo-{today}.json", json.dumps(
            {"date": today, "samples": args.samples, "torch": torch.__version__,
             "outcomes": outcomes}, indent=1))
        _write(RESULTS / "opinfo-latest.md", text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
