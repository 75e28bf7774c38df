"""What bench.zoo measures irc against: inductor (torch.compile) and ONNX Runtime.

Each ``prepare_*`` compiles one model the way a deployer would and returns a
:class:`Competitor`: the call to time (interleaved with eager and irc by
:func:`bench.harness.interleaved_medians`), its cold compile (seconds from
nothing to the first result), and whether its first result matched eager.

* ``inductor``: ``torch.compile(model)`` (inductor, default mode), cold:
  compile + first call in a fresh inductor cache (``fresh_inductor_cache``),
  so nothing compiled earlier in this process or on disk is reused.
* ``onnxruntime``: ``torch.onnx.export`` (the dynamo exporter, which needs
  onnxscript) into memory, then an ``InferenceSession`` on the CPU provider
  with ``intra_op_num_threads`` = torch's thread count, one inter-op thread
  and spinning off (``session.intra_op.allow_spinning = 0``: the benchmarks
  interleave, and a spinning pool would steal the next contender's cores);
  cold: export + session creation + first run. Inputs are handed over as
  NumPy arrays made once; outputs come back as NumPy arrays.

:func:`measure_isolated` runs one contender in a subprocess of its own
(``python -m bench.against --worker FILE``): the parent saves the model's
weights and the inputs with ``torch.save``, the child rebuilds the zoo model,
loads them, prepares the contender and times it interleaved with eager there
(same repeats, same torch thread count), and prints one JSON line. So no
contender's export, compile, thread pools or OpenMP settings are left in the
process that times irc (``bench.zoo --against`` gave irc slower numbers with
the contenders prepared in its own process: bench/README.md).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from tests.zoo.check import compare

AGAINST = ("inductor", "onnxruntime")


@dataclass
class Competitor:
    """One contender's compiled model."""

    call: Callable[[], object]
    cold_compile_s: float
    problems: list[str]


def prepare(name: str, zoo_name: str, model: torch.nn.Module, inputs: Mapping[str, Any],
            expected: Any) -> Competitor:
    """Compile ``model`` with contender ``name`` (one of :data:`AGAINST`), on a
    copy: torch.export and torch.compile may change a model's state (a failed
    export of GPT-2 left irc's compiled copy of the same module 10x slower)."""
    model = copy.deepcopy(model)
    if name == "inductor":
        return _inductor(zoo_name, model, inputs, expected)
    if name == "onnxruntime":
        return _onnxruntime(zoo_name, model, inputs, expected)
    raise ValueError(f"unknown contender {name!r} (known: {', '.join(AGAINST)})")


def _inductor(zoo_name: str, model: torch.nn.Module, inputs: Mapping[str, Any],
              expected: Any) -> Competitor:
    from torch._inductor.utils import fresh_inductor_cache
    with fresh_inductor_cache():
        t0 = time.perf_counter()
        compiled = torch.compile(model)
        first = compiled(**inputs)
        cold = time.perf_counter() - t0
    problems = compare(zoo_name, expected, first, 0)
    return Competitor(lambda: compiled(**inputs), cold, problems)


def _flat(value: Any) -> list[torch.Tensor]:
    from irc.debug.capture import flat_tensors
    return flat_tensors(value)


def _onnxruntime(zoo_name: str, model: torch.nn.Module, inputs: Mapping[str, Any],
                 expected: Any) -> Competitor:
    import onnxruntime as ort
    t0 = time.perf_counter()
    buffer = io.BytesIO()
    program = torch.onnx.export(model, (), kwargs=dict(inputs), dynamo=True, verbose=False)
    assert program is not None
    program.save(buffer)  # type: ignore[union-attr]
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    tensors = [v for v in inputs.values() if isinstance(v, torch.Tensor)]
    feed = {n: t.numpy() for n, t in zip(names, tensors)} if len(names) == len(tensors) else {}
    if not feed:
        raise RuntimeError(f"onnx graph takes {names}, the model got {len(tensors)} tensors")
    first = session.run(None, feed)
    cold = time.perf_counter() - t0
    want = _flat(expected)
    got = [torch.from_numpy(a) for a in first]
    problems = []
    if len(got) < 1 or got[0].shape != want[0].shape:
        problems.append(f"onnxruntime: first output {[tuple(g.shape) for g in got[:1]]}, "
                        f"eager {tuple(want[0].shape)}")
    elif not torch.allclose(got[0], want[0], rtol=1e-3, atol=1e-3):
        problems.append(f"onnxruntime: first output differs by "
                        f"{(got[0] - want[0]).abs().max().item():.2e}")
    return Competitor(lambda: session.run(None, feed), cold, problems)


WORKER_TIMEOUT_S = 1800


def measure_isolated(name: str, zoo_name: str, model: torch.nn.Module, inputs: Mapping[str, Any],
                     repeats: int, threads: int) -> dict[str, Any]:
    """Contender ``name`` on ``model`` and ``inputs`` (their values, through a
    file) in a fresh process: ``{"ms", "eager_ms", "cold_s", "problems"}``, or
    ``{"error": message}`` when it could not be prepared or timed."""
    if name not in AGAINST:
        raise ValueError(f"unknown contender {name!r} (known: {', '.join(AGAINST)})")
    fd, path = tempfile.mkstemp(prefix=f"against-{zoo_name}-", suffix=".pt")
    os.close(fd)
    try:
        torch.save({"contender": name, "model": zoo_name, "state": model.state_dict(),
                    "inputs": dict(inputs), "repeats": repeats, "threads": threads}, path)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        try:
            done = subprocess.run([sys.executable, "-m", "bench.against", "--worker", path],
                                  capture_output=True, text=True, timeout=WORKER_TIMEOUT_S,
                                  cwd=root, env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"{name}: no result in {WORKER_TIMEOUT_S} s"}
        for line in reversed(done.stdout.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{name}: worker exited {done.returncode}: {tail[:200]}"}
    finally:
        os.unlink(path)


def _worker(path: str) -> dict[str, Any]:
    """The child of :func:`measure_isolated`: prepare, time with eager, report."""
    from bench.harness import interleaved_medians
    from bench.zoo import MODELS
    job = torch.load(path, weights_only=False)
    torch.set_num_threads(job["threads"])
    model, _ = MODELS[job["model"]].make()
    model.load_state_dict(job["state"])
    inputs = job["inputs"]
    name = job["contender"]
    with torch.no_grad():
        expected = model(**inputs)
        try:
            contender = prepare(name, job["model"], model, inputs, expected)
        except Exception as err:  # noqa: BLE001 - reported as the row's problem
            return {"error": f"{name}: {type(err).__name__}: "
                             f"{(str(err).splitlines() or [''])[0][:200]}"}
        medians = interleaved_medians({"eager": lambda: model(**inputs), name: contender.call},
                                      job["repeats"])
    return {"ms": medians[name] * 1e3, "eager_ms": medians["eager"] * 1e3,
            "cold_s": contender.cold_compile_s, "problems": contender.problems}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one contender in its own process (bench.zoo)")
    parser.add_argument("--worker", required=True, metavar="FILE.pt")
    args = parser.parse_args(argv)
    print(json.dumps(_worker(args.worker)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
