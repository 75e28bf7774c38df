"""Block reductions in generated Triton kernels.

One :class:`ReductionAccumulator` per reduction op: the *persistent* form
reduces a whole row held in one ``[XBLOCK, RBLOCK]`` block (``tl.sum``,
``tl.max``..., NaN-propagating max/min through a ``tl.reduce`` combine helper);
the *looped* form keeps ``[XBLOCK, RBLOCK]`` accumulators across chunks of the
row and reduces them at the end. argmax/argmin return the first index of the
extreme value, with NaN counting as the extreme (torch's rule).
"""

from __future__ import annotations

from typing import Protocol

import torch

from irc.backends.triton.codegen_index import Ix
from irc.backends.triton.codegen_ops import Val, convert, reg_type
from irc.ir import graph as g
from irc.ir.types import dtype_of

class KernelWriter(Protocol):
    """What an accumulator uses of :class:`~irc.backends.triton.codegen_kernel.KernelWriter`."""

    @property
    def layout(self) -> ReductionLayoutLike | None: ...
    @property
    def helpers(self) -> set[str]: ...

    def bind(self, expr: str, axes: frozenset[int], prefix: str = "t") -> Ix: ...
    def emit(self, line: str) -> None: ...
    def fresh(self, prefix: str) -> str: ...


class ReductionLayoutLike(Protocol):
    @property
    def reduced(self) -> int: ...


class ReductionAccumulator:
    """Text of one reduction, persistent (one block) or looped (accumulators)."""

    def __init__(self, w: KernelWriter, op: g.ReduceOp) -> None:
        self.w = w
        self.op = op
        self.kind = op.name.removeprefix("graph.")
        self.out = dtype_of(op.result.type)
        self.src = dtype_of(op.input.type)
        assert w.layout is not None
        self.n = w.layout.reduced
        self.names: list[str] = []

    def acc_dtype(self) -> torch.dtype:
        if self.kind in ("sum", "prod"):
            return self.out
        if self.kind == "mean":
            return self.out
        if self.kind in ("any", "all"):
            return torch.int32
        return self.src if self.src != torch.bool else torch.int32

    def prepared(self, x: Val) -> str:
        """The input in the accumulation dtype."""
        if self.kind in ("any", "all"):
            return f"({x.text} != 0).to(tl.int32)"
        return convert(x.text, x.dtype, self.acc_dtype())

    def identity(self) -> str:
        dt = self.acc_dtype()
        if self.kind in ("sum", "mean", "any"):
            return "0"
        if self.kind in ("prod", "all"):
            return "1"
        big = self.kind in ("amin", "argmin")
        if dt.is_floating_point:
            return 'float("inf")' if big else 'float("-inf")'
        info = torch.iinfo(dt)
        return str(info.max if big else info.min)

    def persistent(self, x: Val, r: Ix, mask: str) -> str:
        w, ident = self.w, self.identity()
        v = w.bind(f"tl.where({mask}, {self.prepared(x)}, {ident})", frozenset({0, 1}), "v").text
        if self.kind in ("sum", "mean"):
            res = f"tl.sum({v}, axis=1, keep_dims=True)"
            return self.finish_mean(res)
        if self.kind == "prod":
            w.helpers.add("_prod_combine")
            return f"tl.reduce({v}, 1, _prod_combine, keep_dims=True)"
        if self.kind in ("any", "all"):
            fn = "tl.max" if self.kind == "any" else "tl.min"
            return f"({fn}({v}, axis=1, keep_dims=True) > 0)"
        if self.kind in ("amax", "amin"):
            return self.to_out(self.extreme(v))
        # argmax / argmin: first index of the extreme value; NaN counts as the extreme
        fn = "tl.max" if self.kind == "argmax" else "tl.min"
        m = w.bind(f"{fn}({v}, axis=1, keep_dims=True)", frozenset({0})).text
        idx = w.bind(f"tl.min(tl.where({mask} & ({v} == {m}), {r.text}, {self.n}), axis=1, "
                     f"keep_dims=True)", frozenset({0})).text
        if self.src.is_floating_point:
            nan = w.bind(f"tl.min(tl.where({mask} & ({v} != {v}), {r.text}, {self.n}), axis=1, "
                         f"keep_dims=True)", frozenset({0})).text
            idx = f"tl.where({nan} < {self.n}, {nan}, {idx})"
        return f"({idx}).to(tl.int64)"

    def extreme(self, v: str) -> str:
        """Row max/min; for floats NaN-propagating like torch (a combine helper)."""
        if not self.src.is_floating_point:
            fn = "tl.max" if self.kind == "amax" else "tl.min"
            return f"{fn}({v}, axis=1, keep_dims=True)"
        helper = "_max_nan" if self.kind == "amax" else "_min_nan"
        self.w.helpers.add(helper)
        return f"tl.reduce({v}, 1, {helper}, keep_dims=True)"

    def finish_mean(self, total: str) -> str:
        if self.kind == "mean":
            return f"({total} / {self.n})"
        return total

    def to_out(self, text: str) -> str:
        return convert(text, self.acc_dtype(), self.out)

    # -- looped form --

    def init(self) -> None:
        w = self.w
        shape = "[XBLOCK, RBLOCK]"
        acc = w.fresh("acc")
        w.emit(f"{acc} = tl.full({shape}, {self.identity()}, {reg_type(self.acc_dtype())})")
        self.names = [acc]
        if self.kind in ("argmax", "argmin"):
            idx, nan = w.fresh("acc_idx"), w.fresh("acc_nan")
            w.emit(f"{idx} = tl.full({shape}, {self.n}, tl.int32)")
            w.emit(f"{nan} = tl.full({shape}, {self.n}, tl.int32)")
            self.names += [idx, nan]

    def update(self, x: Val, r: Ix, mask: str) -> None:
        w, acc, ident = self.w, self.names[0], self.identity()
        v = w.bind(f"tl.where({mask}, {self.prepared(x)}, {ident})", frozenset({0, 1}), "v").text
        if self.kind in ("sum", "mean"):
            w.emit(f"{acc} = {acc} + {v}")
        elif self.kind == "prod":
            w.emit(f"{acc} = {acc} * {v}")
        elif self.kind in ("any", "amax", "all", "amin"):
            fn = "tl.maximum" if self.kind in ("any", "amax") else "tl.minimum"
            floating = self.acc_dtype().is_floating_point
            nan = ", propagate_nan=tl.PropagateNan.ALL" if floating else ""
            w.emit(f"{acc} = {fn}({acc}, {v}{nan})")
        else:
            idx, nan = self.names[1], self.names[2]
            cmp = ">" if self.kind == "argmax" else "<"
            better = w.bind(f"{mask} & (({v} {cmp} {acc}) | ({idx} == {self.n}))",
                            frozenset({0, 1}), "b").text
            w.emit(f"{acc} = tl.where({better}, {v}, {acc})")
            w.emit(f"{idx} = tl.where({better}, {r.text}, {idx})")
            if self.acc_dtype().is_floating_point:
                w.emit(f"{nan} = tl.minimum({nan}, tl.where({mask} & ({v} != {v}), {r.text}, "
                       f"{self.n}))")

    def finish(self) -> str:
        w, acc = self.w, self.names[0]
        if self.kind in ("sum", "mean"):
            return self.finish_mean(f"tl.sum({acc}, axis=1, keep_dims=True)")
        if self.kind == "prod":
            w.helpers.add("_prod_combine")
            return f"tl.reduce({acc}, 1, _prod_combine, keep_dims=True)"
        if self.kind in ("any", "all"):
            fn = "tl.max" if self.kind == "any" else "tl.min"
            return f"({fn}({acc}, axis=1, keep_dims=True) > 0)"
        if self.kind in ("amax", "amin"):
            return self.to_out(self.extreme(acc))
        idx, nan = self.names[1], self.names[2]
        fn = "tl.max" if self.kind == "argmax" else "tl.min"
        m = w.bind(f"{fn}({acc}, axis=1, keep_dims=True)", frozenset({0})).text
        best = w.bind(f"tl.min(tl.where({acc} == {m}, {idx}, {self.n}), axis=1, keep_dims=True)",
                      frozenset({0})).text
        if self.src.is_floating_point:
            first_nan = w.bind(f"tl.min({nan}, axis=1, keep_dims=True)", frozenset({0})).text
            best = f"tl.where({first_nan} < {self.n}, {first_nan}, {best})"
        return f"({best}).to(tl.int64)"
