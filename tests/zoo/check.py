"""Compile a zoo model and compare it with eager: shared by the zoo tests and
``python -m bench.zoo``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tests.zoo.models import ZOO, flat_tensors

RTOL = ATOL = 1e-3


@dataclass
class Verdict:
    """How a compiled model compared with eager on its calls."""

    name: str
    target: str
    mismatches: list[str] = field(default_factory=list)
    stats: Any = None  # the compiled callable's irc.stats.CompileStats

    @property
    def strict_ok(self) -> bool:
        """Something was compiled, and no node and no call ran in eager."""
        s = self.stats
        return bool(s is not None and s.graphs > 0 and s.programs > 0 and not s.eager_ops
                    and s.eager_calls == 0)

    def problems(self) -> list[str]:
        out = list(self.mismatches)
        s = self.stats
        if s is None or s.graphs == 0 or s.programs == 0:
            out.append("nothing was compiled by irc")
        elif s.eager_ops:
            out.append(f"nodes ran in eager: {sorted(set(s.eager_ops))}")
        elif s.eager_calls:
            out.append(f"{s.eager_calls} call(s) ran nothing compiled: {s.nothing_compiled}")
        return out


def compare(name: str, expected: Any, got: Any, call: int) -> list[str]:
    """Mismatches between two model outputs (every tensor, allclose at RTOL/ATOL)."""
    want, have = flat_tensors(expected), flat_tensors(got)
    if len(want) != len(have):
        return [f"call {call}: {len(have)} output tensors, eager gives {len(want)}"]
    problems = []
    for i, (w, h) in enumerate(zip(want, have)):
        if w.shape != h.shape or w.dtype != h.dtype:
            problems.append(f"call {call} output {i}: {h.dtype}{list(h.shape)}, "
                            f"eager gives {w.dtype}{list(w.shape)}")
        elif not torch.allclose(h, w, rtol=RTOL, atol=ATOL, equal_nan=True):
            err = (h.double() - w.double()).abs().max().item()
            problems.append(f"call {call} output {i} {list(w.shape)}: max abs error {err:.3g}")
    return problems


def check_model(name: str, target: str = "cpu", calls: int = 2,
                options: dict[str, Any] | None = None) -> Verdict:
    """Compile ZOO[name] for ``target`` with strict=True and compare it with
    eager on ``calls`` calls (each after the first on fresh random inputs of
    the same shapes)."""
    import irc
    zoo = ZOO[name]
    model, inputs = zoo.make()
    verdict = Verdict(name, target)
    compiled = irc.compile(model, target=target, strict=True, options=options)
    verdict.stats = compiled.irc_stats
    with torch.no_grad():
        for call in range(calls):
            if call:
                inputs = zoo.fresh_inputs(model, seed=100 + call)
            expected = model(**inputs)
            got = compiled(**inputs)
            verdict.mismatches += compare(name, expected, got, call)
    return verdict
