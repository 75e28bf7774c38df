"""Process replay: write the generated code of every test and zoo model, and
compare it with an earlier run.

    python scripts/replay.py OUT                      write OUT/<model>.<n>.ll and .triton.py
    python scripts/replay.py OUT --compare BASE       also diff OUT against BASE; exit 1 on change
    python scripts/replay.py OUT --models MLP,gpt2    only these models

A refactor of the middle of the compiler should leave the generated code
byte-for-byte the same; this shows it does (or exactly where it does not).

For each model it captures the graphs exactly as ``irc.compile`` does
(dynamo + AOTAutograd + the FX importer, under ``torch.no_grad()``), but
instead of compiling them it records each Program and runs the graph in eager
(so the next graph of a model with graph breaks still gets real inputs). Each
recorded graph ``n`` then goes through the pipeline ``irc.compile`` runs for
``cpu`` and the LLVM translator (``<model>.<n>.ll``, the text the CPU backend
hands to the JIT) and through the pipeline for ``cuda`` and the Triton code
generator with ``matmul="auto"`` (``<model>.<n>.triton.py``); the CPU module's
package schedule and native C host schedule (``<model>.<n>.c``: the JSON
schedule ``irc.export`` writes, then ``irc_native.c`` or why there is none) are
recorded too. Nothing is
JIT-compiled or run on a device, which keeps the whole zoo to minutes. A model
that fails to capture or lower writes ``<model>.error.txt`` (its first error
line), so a model that starts or stops compiling shows in the comparison too.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _record_programs(run_model: Callable[[], Any]) -> list[Any]:
    """The Programs ``irc.compile(target="cpu")`` would compile while
    ``run_model`` runs, in order; each graph runs in eager instead."""
    import irc.frontends.capture as capture
    recorded: list[Any] = []

    def record(gm: Any, target: str, options: Any, weight_placeholders: Any = None,
               stats: Any = None, derived: Any = None) -> Any:
        program, _, _ = capture._import(gm, target, weight_placeholders)
        recorded.append(program)
        return capture._eager(gm)

    original = capture._compile_whole
    capture._compile_whole = record  # type: ignore[assignment]
    try:
        run_model()
    finally:
        capture._compile_whole = original  # type: ignore[assignment]
    return recorded


def _pipeline(target: str) -> str:
    """The pipeline irc.compile runs for ``target`` (default configuration)."""
    from irc.config import Config
    return Config.from_options(None, target=target).pipeline_for(target)


def artefacts(program: Any) -> dict[str, str]:
    """``{"ll": LLVM IR, "c": package schedule + native C, "triton.py": Triton
    source}`` of one graph-level Program."""
    from irc.backends.llvm.backend import readable_llvm_ir
    from irc.backends.llvm.kernel_texts import kernel_module, kernel_texts
    from irc.backends.triton.codegen import generate_source
    from irc.passes.pipeline import run_pipeline
    out: dict[str, str] = {}
    cpu = program.module.clone()
    run_pipeline(cpu, _pipeline("cpu"), verify_each=False)
    out["ll"] = readable_llvm_ir(kernel_texts(kernel_module(cpu)))  # as the backend compiles
    out["c"] = _native_text(cpu, program.weights)
    cuda = program.module.clone()
    run_pipeline(cuda, _pipeline("cuda"), verify_each=False)
    out["triton.py"] = generate_source(cuda, matmul="auto")
    return out


def _native_text(module: Any, weights: Any) -> str:
    """The package schedule (JSON) and native C source of a loops-level module,
    as ``irc.export`` makes them (no object code is compiled)."""
    import json

    from irc.backends.llvm.native import native_sources
    from irc.backends.llvm.package import _ScheduleWriter
    schedule = _ScheduleWriter(module, weights).run()
    values = schedule["values"]
    ins = [{"name": n, **values[s]} for n, s in zip(schedule["input_names"], schedule["inputs"])]
    outs = [{"name": f"output_{i}", **values[s]} for i, s in enumerate(schedule["outputs"])]
    sources, info = native_sources(schedule, None, 0, "", ins, outs)
    text = json.dumps(schedule, indent=1, sort_keys=True, default=str) + "\n"
    return text + (sources["irc_native.c"] if info["available"] else f"no native C: {info['reason']}\n")


def _model_runners(names: Iterable[str] | None) -> dict[str, Callable[[], Any]]:
    import torch

    from tests.models import MODELS
    from tests.zoo.models import ZOO
    import irc

    def test_model(factory: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            model, inputs = factory()
            with torch.no_grad():
                return irc.compile(model, target="cpu")(*inputs)
        return run

    def zoo_model(entry: Any) -> Callable[[], Any]:
        def run() -> Any:
            model, inputs = entry.make()
            with torch.no_grad():
                return irc.compile(model, target="cpu")(**inputs)
        return run

    runners = {name: test_model(f) for name, f in MODELS.items()}
    runners.update({f"zoo_{name}": zoo_model(entry) for name, entry in ZOO.items()})
    if names is None:
        return runners
    chosen = {}
    for name in names:
        key = name if name in runners else f"zoo_{name}"
        if key not in runners:
            raise SystemExit(f"replay: unknown model '{name}' (models: {', '.join(runners)})")
        chosen[key] = runners[key]
    return chosen


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_replay(out: Path, names: Iterable[str] | None = None, log: Callable[[str], None] = print
                 ) -> list[str]:
    """Write every model's artefacts into ``out``; returns the file names written."""
    import time
    import warnings

    import torch
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for name, run in _model_runners(names).items():
        start = time.perf_counter()
        torch._dynamo.reset()
        files: dict[str, str] = {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                programs = _record_programs(run)
                for i, program in enumerate(programs):
                    for ext, text in artefacts(program).items():
                        files[f"{name}.{i}.{ext}"] = text
        except Exception as err:  # a model that does not compile is recorded as such
            first = (str(err).strip().splitlines() or [""])[0]
            files = {f"{name}.error.txt": f"{type(err).__name__}: {first}\n"}
        for file, text in files.items():
            _write(out / file, text)
        written += files
        log(f"{name}: {len(files)} files, {time.perf_counter() - start:.1f}s")
    return written


def compare(new: Path, base: Path, names: Iterable[str] | None = None,
            log: Callable[[str], None] = print) -> bool:
    """Whether ``new`` and ``base`` hold the same files with the same text
    (only the models in ``names``, when given); logs a diff of each change."""
    def files(folder: Path) -> set[str]:
        found = {p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith(".tmp")}
        if names is None:
            return found
        keys = [n if n in _model_runners(None) else f"zoo_{n}" for n in names]
        return {f for f in found if any(f.startswith(k + ".") for k in keys)}

    new_files, base_files = files(new), files(base)
    same = True
    for name in sorted(base_files - new_files):
        log(f"missing now: {name}")
        same = False
    for name in sorted(new_files - base_files):
        log(f"new: {name}")
        same = False
    for name in sorted(new_files & base_files):
        a = (base / name).read_text(encoding="utf-8")
        b = (new / name).read_text(encoding="utf-8")
        if a != b:
            same = False
            diff = list(difflib.unified_diff(a.splitlines(), b.splitlines(), f"base/{name}",
                                             f"new/{name}", lineterm="", n=2))
            log(f"changed: {name} ({len(diff)} diff lines)")
            for line in diff[:40]:
                log("  " + line)
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="folder to write (default: a temporary one)")
    parser.add_argument("--compare", metavar="BASE", help="diff against an earlier run")
    parser.add_argument("--models", help="comma-separated model names (default: all test and "
                                         "zoo models; zoo names with or without 'zoo_')")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n] if args.models else None
    if args.out is None and args.compare is None:
        parser.error("give an output folder, or --compare BASE")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        write_replay(out, names)
        if args.compare is None:
            return 0
        if compare(out, Path(args.compare), names):
            print(f"replay: no change against {args.compare}")
            return 0
        print(f"replay: generated code differs from {args.compare}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
