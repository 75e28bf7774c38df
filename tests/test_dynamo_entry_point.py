"""``torch.compile(model, backend="irc")`` in a fresh process that never
imported irc: torch finds irc through the ``torch_dynamo_backends`` entry point."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

SCRIPT = """
import torch
m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU()).eval()
x = torch.randn(3, 4)
with torch.no_grad():
    y = torch.compile(m, backend="irc", options={"target": "cpu"})(x)
    assert torch.allclose(y, m(x), atol=1e-5), (y, m(x))
import irc.api  # registering in-process afterwards must not clash either
print("ok")
"""


def test_backend_irc_through_the_entry_point() -> None:
    if not any(e.name == "irc" for e in entry_points(group="torch_dynamo_backends")):
        pytest.fail("irc is not installed with its torch_dynamo_backends entry point "
                    "(pip install -e .)")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
