"""The update rules of the optimizers :func:`irc.optim.compile_step` fuses,
written once against an abstract scalar algebra (:class:`Ops`) that each
emitter (LLVM IR for the CPU, Triton source for the GPU) implements.

A rule reads one element of each of its per-parameter buffers (``p`` the
parameter, ``g`` its gradient, state such as ``m``/``v``) and the step's
scalars, and returns the new values of the buffers it writes. Each rule
spells torch.optim's single-tensor implementation operation by operation, in
its order of floating-point evaluation (``addcmul``: ``self + value*t1*t2``,
``addcdiv``: ``self + value*(t1/t2)``, ``lerp`` with weight < 0.5:
``self + w*(end-self)``), so results agree with torch.optim to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from dataclasses import dataclass
from typing import Any, Protocol


class Ops(Protocol):
    """The scalar operations a rule may use (values are emitter-specific)."""

    def add(self, a: Any, b: Any) -> Any: ...
    def sub(self, a: Any, b: Any) -> Any: ...
    def mul(self, a: Any, b: Any) -> Any: ...
    def div(self, a: Any, b: Any) -> Any: ...
    def neg(self, a: Any) -> Any: ...
    def sqrt(self, a: Any) -> Any: ...
    def select(self, flag: Any, a: Any, b: Any) -> Any:
        """``a`` where the scalar ``flag`` is nonzero, else ``b``."""
        ...


Body = Callable[[Ops, Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Rule:
    """One optimizer's element-wise update, specialised on its static flags."""

    name: str
    reads: tuple[str, ...]  # per-parameter buffers read, in kernel argument order
    writes: tuple[str, ...]  # the subset written back in place
    scalars: tuple[str, ...]  # per-launch float scalars, in order
    body: Body
    counts_steps: bool = False  # the kernel adds 1 to each tensor's float32 step counter (Adam's state["step"])


@lru_cache(maxsize=None)
def adam_rule(decoupled: bool, weight_decay: bool, maximize: bool, lerp_high: bool = False) -> Rule:
    """Adam (``decoupled=False``) / AdamW: torch.optim.adam._single_tensor_adam.

    Scalars: ``wd`` (L2 weight decay) or ``decay`` (``1 - lr*wd``, AdamW),
    ``w1 = 1-beta1``, ``b2``, ``omb2 = 1-beta2``, ``bc2s = sqrt(1-beta2**step)``,
    ``eps``, ``neg_step = -lr/(1-beta1**step)``. ``lerp_high``: ``1-beta1 >= 0.5``
    (torch's lerp then computes ``end - (end-self)*(1-w)``, ``omw`` = ``beta1``).
    """
    scalars = ["omw" if lerp_high else "w1", "b2", "omb2", "bc2s", "eps", "neg_step"]
    if weight_decay:
        scalars.insert(0, "decay" if decoupled else "wd")

    def body(o: Ops, x: Mapping[str, Any], s: Mapping[str, Any]) -> dict[str, Any]:
        p, g, m, v = x["p"], x["g"], x["m"], x["v"]
        if maximize:
            g = o.neg(g)
        if weight_decay and decoupled:
            p = o.mul(p, s["decay"])
        elif weight_decay:
            g = o.add(g, o.mul(s["wd"], p))
        if lerp_high:
            m = o.sub(g, o.mul(o.sub(g, m), s["omw"]))
        else:
            m = o.add(m, o.mul(s["w1"], o.sub(g, m)))
        v = o.add(o.mul(v, s["b2"]), o.mul(o.mul(s["omb2"], g), g))
        denom = o.add(o.div(o.sqrt(v), s["bc2s"]), s["eps"])
        p = o.add(p, o.mul(s["neg_step"], o.div(m, denom)))
        return {"p": p, "m": m, "v": v}

    name = ("adamw" if decoupled else "adam") + ("_wd" if weight_decay else "") + (
        "_max" if maximize else "") + ("_lerphi" if lerp_high else "")
    return Rule(name, ("p", "g", "m", "v"), ("p", "m", "v"), tuple(scalars), body, counts_steps=True)


@lru_cache(maxsize=None)
def sgd_rule(momentum: bool, weight_decay: bool, nesterov: bool, maximize: bool) -> Rule:
    """SGD: torch.optim.sgd._single_tensor_sgd.

    Scalars: ``wd``, ``mom``, ``omd = 1-dampening``, ``first`` (1 on a
    buffer's first step: it starts as the gradient), ``neg_lr``.
    """
    scalars = (["wd"] if weight_decay else []) + (["mom", "omd", "first"] if momentum else []) + ["neg_lr"]

    def body(o: Ops, x: Mapping[str, Any], s: Mapping[str, Any]) -> dict[str, Any]:
        p, g = x["p"], x["g"]
        if maximize:
            g = o.neg(g)
        if weight_decay:
            g = o.add(g, o.mul(s["wd"], p))
        out: dict[str, Any] = {}
        if momentum:
            buf = o.select(s["first"], g, o.add(o.mul(x["b"], s["mom"]), o.mul(s["omd"], g)))
            out["b"] = buf
            g = o.add(g, o.mul(s["mom"], buf)) if nesterov else buf
        out["p"] = o.add(p, o.mul(s["neg_lr"], g))
        return out

    reads = ("p", "g", "b") if momentum else ("p", "g")
    writes = ("p", "b") if momentum else ("p",)
    name = "sgd" + ("_mom" if momentum else "") + ("_nesterov" if nesterov else "") + (
        "_wd" if weight_decay else "") + ("_max" if maximize else "")
    return Rule(name, reads, writes, tuple(scalars), body)
