"""The README's main job (examples/quickstart.py, run by scripts/demo.sh) works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quickstart_compiles_gpt2_correctly() -> None:
    done = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart.py")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CORRECT" in done.stdout and "GPT2LMHeadModel" in done.stdout
    assert "nothing in eager" in done.stdout
