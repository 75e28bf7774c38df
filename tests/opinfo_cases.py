"""PyTorch's OpInfo database (``op_db``) as irc test cases, shared by
``tests/test_opinfo.py`` and ``python -m bench.opinfo``.

One *case* is one ``op_db`` entry (name plus variant). Its samples are taken
in float32 where the entry supports it on the CPU, else in the first dtype of
``PREFERRED`` it supports. Each sample is traced to core aten as AOTAutograd
gives graphs (irc's decomposition table, functionalized), compiled with
``strict=True`` and compared with eager. :func:`classify` sorts the outcome
of one case into one category (worst sample wins):

* ``compiled``: every sample compiled strictly (library calls inside the
  compiled graph count, as inductor's fallback kernels do) and matched eager;
* ``eager``: some node has no lowering (``UnsupportedOpError``), or the sample
  cannot be traced to one static graph (data-dependent output shapes such as
  ``nonzero``: dynamo graph-breaks there too);
* ``dtype``: the op has no sample in a dtype irc supports, or a node's dtype
  is not supported (complex results...);
* ``internal``: any other exception while compiling or running: an irc bug;
* ``mismatch``: the compiled result differs from eager: an irc bug;
* ``skipped``: eager itself fails on the sample (jiterator ops need a GPU),
  the op has no CPU kernel at all, or no samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils._pytree import tree_flatten, tree_unflatten

import irc
from irc.frontends.capture import compile_graph
from irc.frontends.decompositions import decomposition_table

CATEGORIES = ("compiled", "eager", "dtype", "internal", "mismatch", "skipped")
_WORST_FIRST = ("internal", "mismatch", "eager", "dtype", "skipped", "compiled")

PREFERRED = (torch.float32, torch.int64, torch.bool, torch.float64, torch.int32)

# torch's generator is seeded with this before eager and before irc's call:
# random ops must give eager's values (irc calls torch's op at run time)
SEED = 1234

# ops whose result values are undefined (uninitialised memory): shapes and dtypes only
UNDEFINED_VALUES = frozenset({"empty", "empty_like", "empty_strided", "new_empty",
                              "new_empty_strided", "empty_permuted"})


def op_db() -> list[Any]:
    from torch.testing._internal.common_methods_invocations import op_db as db
    return list(db)


def case_name(op: Any) -> str:
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


def sample_dtype(op: Any) -> torch.dtype | None:
    """The dtype the case's samples are drawn in (None: none irc supports)."""
    supported = op.supported_dtypes("cpu")
    return next((d for d in PREFERRED if d in supported), None)


def samples(op: Any, count: int) -> list[Any]:
    dtype = sample_dtype(op)
    if dtype is None:
        return []
    torch.manual_seed(0)
    out = []
    for s in op.sample_inputs("cpu", dtype, requires_grad=False):
        out.append(s)
        if len(out) >= count:
            break
    return out


def trace(fn: Callable[..., Any], *args: torch.Tensor) -> torch.fx.GraphModule:
    """``fn`` as a core-aten graph, functionalized (what AOTAutograd hands a backend)."""
    aten_gm = make_fx(fn, decomposition_table=decomposition_table(), tracing_mode="fake")(*args)
    functional = torch.func.functionalize(aten_gm, remove="mutations_and_views")
    return make_fx(functional, tracing_mode="fake")(*args)


def as_function(op: Any, sample: Any) -> tuple[Callable[..., Any], list[torch.Tensor]]:
    """The sample as a function of its tensors (other arguments baked in)."""
    flat, spec = tree_flatten((sample.input, sample.args, sample.kwargs))
    positions = [i for i, v in enumerate(flat) if isinstance(v, torch.Tensor)]

    def fn(*tensors: torch.Tensor) -> Any:
        values = list(flat)
        for i, t in zip(positions, tensors):
            values[i] = t
        x, args, kwargs = tree_unflatten(values, spec)
        return op(x, *args, **kwargs)

    return fn, [flat[i] for i in positions]


def _is_random(gm: torch.fx.GraphModule) -> bool:
    return any(isinstance(n.target, torch._ops.OpOverload)
               and torch.Tag.nondeterministic_seeded in n.target.tags for n in gm.graph.nodes)


def compare(got: list[Any], want: Any, values: bool = True) -> None:
    """Raise AssertionError where irc's flat outputs differ from eager's
    (``values=False``: shapes and dtypes only)."""
    expected = [w for w in tree_flatten(want)[0] if isinstance(w, torch.Tensor)]
    got = [t for t in got if isinstance(t, torch.Tensor)]
    if len(got) < len(expected):
        raise AssertionError(f"{len(got)} tensor outputs, eager gives {len(expected)}")
    for a, b in zip(got, expected):
        if not values:
            if (a.shape, a.dtype) != (b.shape, b.dtype):
                raise AssertionError(f"got {a.dtype} {list(a.shape)}, eager {b.dtype} {list(b.shape)}")
            continue
        tol = 1e-4 if b.dtype in (torch.float32, torch.float64) else None
        torch.testing.assert_close(a, b, equal_nan=True, atol=tol, rtol=tol, check_stride=False,
                                   check_dtype=True)


@dataclass
class Outcome:
    """What happened to one case on one target."""

    name: str
    category: str
    detail: str = ""
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)


def _dtype_reason(message: str) -> bool:
    return ("dtype" in message or "layout" in message) and "not supported" in message


def lift_input_mutations(gm: torch.fx.GraphModule) -> list[int]:
    """Turn ``copy_(input, value)`` nodes (a functionalized graph's input
    mutations) into trailing outputs, as AOTAutograd does: the caller copies
    them into the inputs after the call. Returns the mutated input positions."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    output = next(n for n in gm.graph.nodes if n.op == "output")
    lifted: list[tuple[int, torch.fx.Node]] = []
    for node in list(gm.graph.nodes):
        if node.target is torch.ops.aten.copy_.default and node.args[0] in placeholders:
            lifted.append((placeholders.index(node.args[0]), node.args[1]))
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    if lifted:
        flat = tree_flatten(output.args[0])[0]
        output.args = (tuple(flat) + tuple(v for _, v in lifted),)
        gm.recompile()
    return [i for i, _ in lifted]


def _clones(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.clone() for t in tensors]


def run_sample(op: Any, sample: Any, targets: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """Category and detail per target for one sample."""
    fn, tensors = as_function(op, sample)
    eager_inputs = _clones(tensors)
    try:
        torch.manual_seed(SEED)
        want = fn(*eager_inputs)
    except Exception as err:  # eager rejects the sample (op_db has such error inputs)
        return {t: ("skipped", f"eager: {type(err).__name__}: {err}"[:200]) for t in targets}
    try:
        gm = trace(fn, *_clones(tensors))
    except Exception as err:  # data-dependent shapes etc.: dynamo would graph-break
        return {t: ("eager", f"not traceable: {type(err).__name__}: {str(err)[:160]}") for t in targets}
    if _is_random(gm):
        # the traced graph may draw differently from the op's eager kernel
        # (a decomposition of dropout draws with rand, eager with bernoulli):
        # eager here is that graph run op by op with the same seed
        eager_inputs = _clones(tensors)
        torch.manual_seed(SEED)
        want = gm(*eager_inputs)
    mutated = lift_input_mutations(gm)
    result = {}
    for target in targets:
        inputs = _clones(tensors)
        try:
            run = compile_graph(gm, target, strict=True)
            torch.manual_seed(SEED)
            got = run(*inputs)
            for i, value in zip(mutated, got[len(got) - len(mutated):]):
                inputs[i].copy_(value)
        except irc.UnsupportedOpError as err:
            kind = "dtype" if _dtype_reason(str(err)) else "eager"
            result[target] = (kind, str(err)[:240])
            continue
        except Exception as err:
            result[target] = ("internal", f"{type(err).__name__}: {str(err)[:240]}")
            continue
        try:
            values = op.name not in UNDEFINED_VALUES
            compare(got[:len(got) - len(mutated)], want, values)
            compare([inputs[i] for i in mutated], [eager_inputs[i] for i in mutated], values)
        except AssertionError as err:
            result[target] = ("mismatch", " ".join(str(err).split())[:240])
            continue
        result[target] = ("compiled", "")
    return result


def classify(op: Any, count: int, targets: tuple[str, ...] = ("reference", "cpu")
             ) -> dict[str, Outcome]:
    """The outcome of one case per target, over its first ``count`` samples."""
    name = case_name(op)
    start = time.perf_counter()
    if not op.supported_dtypes("cpu"):
        return {t: Outcome(name, "skipped", "eager has no CPU kernel") for t in targets}
    chosen = samples(op, count)
    if not chosen:
        kind = "dtype" if sample_dtype(op) is None else "skipped"
        return {t: Outcome(name, kind, "no sample in a supported dtype" if kind == "dtype"
                           else "no samples") for t in targets}
    per_target: dict[str, list[tuple[str, str]]] = {t: [] for t in targets}
    for sample in chosen:
        for t, r in run_sample(op, sample, targets).items():
            per_target[t].append(r)
    seconds = time.perf_counter() - start
    out = {}
    for t, results in per_target.items():
        ran = [r for r in results if r[0] != "skipped"] or results
        worst = min(ran, key=lambda r: _WORST_FIRST.index(r[0]))
        out[t] = Outcome(name, worst[0], worst[1], seconds, [d for _, d in ran if d])
    return out


def cases() -> Iterator[Any]:
    yield from op_db()
