"""irc.profile / `irc profile`: every step of a compiled model timed, costed and traced."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

from irc.cache import CacheConfig
from irc.cli import main
from irc.profile import _compile, profile
from irc.profile_cost import kernel_flops, library_flops
from irc import profile_machine
from irc.profile_machine import MachinePeaks, machine_peaks

sys.path.insert(0, str(Path(__file__).parent))
from models import MODELS  # noqa: E402

PEAKS = MachinePeaks(copy_gbps=10.0, matmul_gflops=100.0, threads=1)
OPTIONS = {"cache": {"enabled": False}}


class Block(torch.nn.Module):
    """Two linears with a residual and a GELU: matmuls (library) and fused kernels."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(32, 64)
        self.b = torch.nn.Linear(64, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(torch.nn.functional.gelu(self.a(x))).tanh()


@pytest.fixture(scope="module")
def block_report():
    torch.manual_seed(0)
    model = Block().eval()
    return profile(model, torch.randn(8, 32), runs=5, warmup=1, options=OPTIONS, peaks=PEAKS)


def test_report_lists_every_step(block_report):
    steps = block_report.steps
    matmuls = [s for s in steps if s.cost.name == "graph.matmul"]
    assert len(matmuls) == 2
    # 2*M*N*K of each linear, in schedule order
    assert sorted(s.cost.flops for s in matmuls) == sorted([2 * 8 * 64 * 32, 2 * 8 * 32 * 64])
    assert block_report.kernels(), "the bias/gelu/tanh/residual work runs in irc's kernels"
    kernel_names = [s.cost.name for s in block_report.kernels()]
    assert len(set(kernel_names)) == len(kernel_names)
    assert all(name.startswith("kernel_") for name in kernel_names)
    # the residual kernel reads x and writes the output at least: 2 * 8*32 floats
    assert max(s.cost.bytes for s in block_report.kernels()) >= 2 * 8 * 32 * 4
    assert all(re.fullmatch(r".*test_profile\.py:\d+", s.cost.source) for s in steps), \
        [s.cost.source for s in steps]
    assert any("self.b(" in s.cost.source_text for s in steps)


def test_times_positive_and_shares_sum_to_one(block_report):
    r = block_report
    assert r.total_seconds > 0 and r.compile_seconds > 0
    assert all(s.seconds > 0 for s in r.steps)
    assert all(s.gbps > 0 for s in r.steps)
    total_share = sum(s.share for s in r.steps) + r.host_share
    assert total_share == pytest.approx(1.0, abs=0.1)
    assert 0 <= r.outside_seconds <= r.total_seconds
    text = r.table()
    assert "graph.matmul" in text and "host" in text and "test_profile.py" in text
    assert len(r.table(top=1).splitlines()) < len(text.splitlines())


def test_trace_has_one_event_per_step(block_report, tmp_path):
    path = tmp_path / "trace.json"
    block_report.write_trace(path)
    trace = json.loads(path.read_text())
    events = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(events) == len(block_report.steps)
    assert {e["name"] for e in events} == {s.label for s in block_report.steps}
    assert all(e["dur"] > 0 and e["ts"] >= 0 for e in events)
    starts = [e["ts"] for e in events]
    assert starts == sorted(starts)
    assert all(e["ts"] + e["dur"] <= f["ts"] + 1e-3 for e, f in zip(events, events[1:]))


def test_recorded_calls_compute_what_eager_does():
    torch.manual_seed(1)
    model, (x,) = MODELS["ResNetCNN"]()
    recorders = []
    compiled = _compile(model, OPTIONS, False, recorders)
    with torch.no_grad():
        compiled(x)
        assert recorders
        for r in recorders:
            r.recording = True
        x2 = torch.randn_like(x)
        out = compiled(x2)
        assert all(len(r.calls) == 1 for r in recorders)
        torch.testing.assert_close(out, model(x2), rtol=1e-4, atol=1e-4)
    # the profiler never touches the program's own step list
    assert all(r.timed is not r.program.steps and len(r.timed) == len(r.program.steps)
               for r in recorders)


def test_conv_and_matmul_flops():
    from irc.frontends.capture import export_program
    from irc.passes.pipeline import run_pipeline
    from irc.config import Config
    from irc.backends.registry import get_backend
    from irc.ir import graph as g
    model = torch.nn.Conv2d(4, 8, 3, padding=1, groups=2)
    program = export_program(model, (torch.randn(2, 4, 6, 6),))
    run_pipeline(program.module, Config().pipeline_for(get_backend("cpu").level))
    convs = [op for op in program.module.walk() if isinstance(op, g.ConvOp)]
    assert len(convs) == 1
    # 2 * (2*8*6*6 outputs) * (4/2 channels * 3*3)
    assert library_flops(convs[0]) == 2 * (2 * 8 * 6 * 6) * (2 * 9)
    kernels = [op for op in program.module.ops if "irc.kernel" in op.attributes]
    for fn in kernels:
        assert kernel_flops(fn) >= 0


def test_kernel_flops_counts_loop_trips():
    from irc.frontends.capture import export_program
    from irc.passes.pipeline import run_pipeline
    from irc.config import Config
    from irc.backends.registry import get_backend

    def fn(x, y, z):
        return x * y + z

    program = export_program(fn, (torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)))
    run_pipeline(program.module, Config().pipeline_for(get_backend("cpu").level))
    kernels = [op for op in program.module.ops if "irc.kernel" in op.attributes]
    assert len(kernels) == 1
    assert kernel_flops(kernels[0]) == 2 * 4 * 8  # one mul + one add per element


def test_machine_peaks_measured_once(tmp_path, monkeypatch):
    cache = CacheConfig(dir=str(tmp_path))
    calls = []
    real = profile_machine.measure

    def counting(repeats: int = 5):
        calls.append(repeats)
        return real(repeats=1)

    monkeypatch.setattr(profile_machine, "measure", counting)
    first = machine_peaks(cache)
    second = machine_peaks(cache)
    assert len(calls) == 1 and first == second
    assert first.copy_gbps > 0 and first.matmul_gflops > 0 and math.isfinite(first.copy_gbps)


def test_cli_prints_report_and_writes_trace(tmp_path, capsys):
    trace = tmp_path / "t.json"
    models = Path(__file__).parent / "models.py"
    assert main(["profile", f"{models}:MLP", "--runs", "2", "--warmup", "0",
                 "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "graph.matmul" in out and "models.py:" in out and "host" in out
    events = [e for e in json.loads(trace.read_text())["traceEvents"] if e["ph"] == "X"]
    assert events and all(e["dur"] > 0 for e in events)


def test_cli_bad_spec_is_a_message(tmp_path, capsys):
    assert main(["profile", f"{tmp_path}/nope.py:f"]) == 1
    assert "no such python file" in capsys.readouterr().err.lower()


def test_attention_and_lookup_costs():
    from irc.frontends.capture import export_program
    from irc.ir import graph as g
    from irc.profile_cost import library_bytes

    table = torch.randn(1000, 16)

    def fn(q, k, v, ids):
        att = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return att, torch.nn.functional.embedding(ids, table)

    q, k, v = torch.randn(2, 4, 8, 16), torch.randn(2, 4, 12, 16), torch.randn(2, 4, 12, 16)
    ids = torch.randint(0, 1000, (2, 3))
    program = export_program(fn, (q, k, v, ids))
    ops = list(program.module.walk())
    (att,) = [op for op in ops if isinstance(op, g.AttentionOp)]
    assert library_flops(att) == 2 * (2 * 4 * 8 * 16) * 12 * 2
    (emb,) = [op for op in ops if isinstance(op, g.EmbeddingOp)]
    assert library_bytes(emb) == 2 * 3 * 8 + 2 * (2 * 3 * 16 * 4)  # not the 64 KB table
