"""irc under torch.distributed on two gloo processes (127.0.0.1, a free port).

Each test starts two ranks of tests/distributed_workers.py, which train eager
DDP / FSDP2 and the irc-compiled forms from the same weights on the same
per-rank batches; the test asserts on what they report. Each rank runs in
a process group of its own, killed with everything in it in ``finally``
(timeout, failure or not), so no process is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("distributed_workers.py")
WORLD = 2
TIMEOUT_S = 240  # the wall clock of a busy 2-core CI machine; idle, each case takes well under a minute


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_ranks(case: str, tmp_path: Path) -> list[dict[str, Any]]:
    """Run ``case`` on WORLD ranks; their JSON results, rank order."""
    port = _free_port()
    prefix = tmp_path / case
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    logs = [open(tmp_path / f"{case}.{rank}.log", "w") for rank in range(WORLD)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for rank in range(WORLD):
            procs.append(subprocess.Popen(
                [sys.executable, str(WORKER), case, str(rank), str(WORLD), str(port), str(prefix)],
                stdout=logs[rank], stderr=subprocess.STDOUT, env=env, start_new_session=True))
        deadline = time.monotonic() + TIMEOUT_S
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: ranks did not finish in {TIMEOUT_S} s\n" + _tails(tmp_path, case))
    finally:
        for proc in procs:
            try:  # the rank and whatever it started (irc's LLVM worker processes)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        for log in logs:
            log.close()
    codes = [p.returncode for p in procs]
    assert codes == [0] * WORLD, f"{case}: exit codes {codes}\n" + _tails(tmp_path, case)
    return [json.loads((tmp_path / f"{case}.{rank}.json").read_text()) for rank in range(WORLD)]


def _tails(tmp_path: Path, case: str) -> str:
    return "\n".join(f"--- rank {rank}\n" + "\n".join(
        (tmp_path / f"{case}.{rank}.log").read_text().splitlines()[-25:]) for rank in range(WORLD))


def _check_matches(result: dict[str, Any], tol: float = 1e-5) -> None:
    assert result["grad_diff"] <= tol * max(1.0, result["grad_scale"]), result
    assert result["param_diff"] <= tol, result
    assert result["irc_losses"] == pytest.approx(result["eager_losses"], rel=1e-5, abs=1e-6)


def test_ddp_three_forms_one_graph_per_bucket(tmp_path: Path) -> None:
    """irc.compile(ddp), torch.compile(ddp, backend="irc") and ddp(irc.compile(m)):
    dynamo's DDPOptimizer hands irc one forward graph per gradient bucket (as
    many as it hands any backend, several at bucket_cap_mb=1), and gradients
    and weights after several SGD steps match eager DDP on both ranks."""
    for rank_result in run_ranks("mlp", tmp_path):
        pieces = rank_result["dynamo_pieces"]
        assert pieces >= 3
        for form in ("irc(ddp)", "torch.compile(ddp)", "ddp(irc)"):
            result = rank_result[form]
            assert result["forward_graphs"] == pieces, (form, result)
            assert result["all_graphs"] == 2 * pieces, (form, result)  # a backward per piece
            _check_matches(result)


def test_ddp_builtin_sequential_is_captured(tmp_path: Path) -> None:
    """irc.compile(DDP(Sequential(...))) compiles the Sequential (dynamo alone
    would skip its torch.nn frames and run it in eager)."""
    for rank_result in run_ranks("mlp_sequential", tmp_path):
        for form in ("irc(ddp)", "ddp(irc)"):
            assert rank_result[form]["forward_graphs"] >= 2, rank_result[form]
            _check_matches(rank_result[form])


def test_ddp_cnn_batch_norm(tmp_path: Path) -> None:
    """Conv + batch norm under DDP: gradients, weights and running statistics match eager."""
    for rank_result in run_ranks("cnn", tmp_path):
        assert rank_result["ddp(irc)"]["forward_graphs"] >= 1
        _check_matches(rank_result["ddp(irc)"])
        assert rank_result["buffer_diff"] <= 1e-5


def test_ddp_zoo_gpt2(tmp_path: Path) -> None:
    """The zoo's GPT-2 under DDP: gradients after several steps match eager DDP."""
    for rank_result in run_ranks("gpt2", tmp_path):
        assert rank_result["ddp(irc)"]["forward_graphs"] >= 1
        _check_matches(rank_result["ddp(irc)"], tol=1e-4)


def test_fsdp2_zoo_llama_blocks(tmp_path: Path) -> None:
    """FSDP2, fully_shard per decoder block with the blocks compiled by irc:
    the same losses as eager FSDP2 over several AdamW steps."""
    for rank_result in run_ranks("fsdp2", tmp_path):
        assert rank_result["irc_graphs"] >= 2
        assert rank_result["irc_losses"] == pytest.approx(rank_result["eager_losses"], rel=1e-4)
