"""Top-down testing and debugging of a model on a backend (TapML-style).

Models are captured as ``irc.compile`` captures them (:mod:`irc.debug.capture`:
dynamo + AOTAutograd with irc's decompositions), so these tools see the graph
that runs.

* :func:`carve`: cut per-operator (or per-kernel) test cases, with the real
  tensors of one eager run, into a self-contained folder (``irc carve``);
  :func:`run_carved` runs such a folder on a target (``irc test-carved``).
* :func:`run_offloaded` / :func:`compile_offloaded`: run a model with only some
  kernels compiled for a target and the rest in eager PyTorch.
* :func:`bisect`: find the first kernel whose migration to a target breaks
  the model (``irc bisect``), with a text/HTML report.
"""

from __future__ import annotations

from irc.debug.bisect import BisectReport, bisect
from irc.debug.carve import CarveResult, carve
from irc.debug.carved_tests import CarvedTestError, run_carved
from irc.debug.offload import compile_offloaded, run_offloaded

__all__ = ["BisectReport", "CarveResult", "CarvedTestError", "bisect", "carve", "compile_offloaded",
           "run_carved", "run_offloaded"]
