"""Runs the golden .mlir tests (tests/filecheck, lit + filecheck) from pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

FILECHECK_DIR = Path(__file__).parent / "filecheck"


def test_lit_golden_tests_pass() -> None:
    lit = Path(sys.executable).parent / "lit"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(lit), "-v", str(FILECHECK_DIR)], capture_output=True, text=True,
                          env=env, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    passed = re.search(r"Passed\s*:\s*(\d+)", output)
    assert passed is not None and int(passed.group(1)) > 0, output[-2000:]
    assert "Failed" not in output, output[-6000:]
