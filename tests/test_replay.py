"""scripts/replay.py: the process-replay script writes every artefact of a
model, the same bytes on every run, and ``--compare`` fails on any change."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "replay.py"


def _replay(*args: str, seed: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("irc_replay_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replay_is_deterministic_and_compare_catches_a_change(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    run = _replay(str(first), "--models", "MLP", seed="1")
    assert run.returncode == 0, run.stdout + run.stderr
    names = sorted(p.name for p in first.iterdir())
    assert names == ["MLP.0.c", "MLP.0.ll", "MLP.0.triton.py"], names
    c = (first / "MLP.0.c").read_text()
    assert '"format": "irc-schedule"' in c and "irc_model_run" in c, c[:2000]
    ll = (first / "MLP.0.ll").read_text()
    assert "define void @\"kernel_0\"" in ll, ll[:2000]
    assert "@triton.jit" in (first / "MLP.0.triton.py").read_text()
    # a second process, with another hash seed, writes the same bytes
    run = _replay(str(second), "--models", "MLP", "--compare", str(first), seed="2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no change" in run.stdout
    # a changed, a missing and an extra artefact are each reported
    replay = _script()
    assert replay.compare(second, first, log=lambda _: None)
    (first / "MLP.0.ll").write_text(ll.replace("define", "define  ", 1))
    lines: list[str] = []
    assert not replay.compare(second, first, log=lines.append)
    assert any(line.startswith("changed: MLP.0.ll") for line in lines), lines
    (first / "MLP.0.ll").write_text(ll)
    (second / "MLP.0.triton.py").rename(second / "MLP.1.triton.py")
    lines.clear()
    assert not replay.compare(second, first, log=lines.append)
    assert "missing now: MLP.0.triton.py" in lines and "new: MLP.1.triton.py" in lines, lines
