"""Symbolic sizes: the ``?`` dimensions of graph-level tensor types.

A dynamic dimension is MLIR's ``?`` in the shape, tied to a named size
expression carried in the tensor type's encoding, one string per ``?`` in
order::

    tensor<?x?x128xf32, ["s0", "2*s1"]>

so the IR knows that two ``?`` are the same size (same expression, which is
structural equality of the types) and how derived sizes relate to the inputs'
(``2*s1`` after a concat, ``s0*128`` after a flatten). The expressions are
sympy expressions over size symbols (positive integers, as dynamo's are: it
specialises sizes 0 and 1); ``//`` is floor division, ``%`` modulo.

What this module guarantees:

* :func:`dim` / :func:`format_dim` turn a torch ``SymInt``, a sympy
  expression or text into one canonical :data:`Dim` and back;
* :func:`bind` reads the sizes of concrete input tensors against the symbolic
  types of ``@main``'s arguments, binding each symbol once and checking every
  other dimension (a derived expression, a repeated symbol, a static size)
  against what the binding gives: a mismatch is an
  :class:`irc.InputMismatchError` naming the input, the dimension and both
  sizes, never a wrong result;
* :func:`irc.ir.specialize.specialize` gives the static module of one binding (every ``?``
  replaced by its value), which any backend compiles as usual.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import sympy
import torch
from xdsl.dialects.builtin import (DYNAMIC_INDEX, ArrayAttr, ModuleOp, StringAttr,
                                   TensorType)
from xdsl.ir import Attribute

from irc.errors import InputMismatchError, IrcError

Dim = int | sympy.Expr
"""A tensor dimension: a static size or a sympy expression over size symbols."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SymbolicShapeError(IrcError):
    """Something that needs a static size met a symbolic one (names it)."""


@lru_cache(maxsize=None)
def symbol(name: str) -> sympy.Symbol:
    """The size symbol ``name`` (a positive integer)."""
    return sympy.Symbol(name, integer=True, positive=True)


@lru_cache(maxsize=4096)
def parse_dim(text: str) -> Dim:
    """A size expression from its printed form (``s0``, ``2*s1``, ``(s0//4)``)."""
    names = {n: symbol(n) for n in _NAME.findall(text) if n not in ("floor", "Mod", "Max", "Min")}
    local_names: dict[str, Any] = {**names, "floor": sympy.floor, "Mod": sympy.Mod,
                                   "Max": sympy.Max, "Min": sympy.Min}
    try:
        expr = sympy.sympify(text, locals=local_names)  # pyright: ignore[reportCallIssue]  # sympy's overloads of sympify leave out its locals
    except (sympy.SympifyError, SyntaxError, TypeError) as err:
        raise SymbolicShapeError(f"malformed size expression {text!r}: {err}") from None
    return canonical(expr)


def canonical(expr: Any) -> Dim:
    """``expr`` as a :data:`Dim`: a python int when it is a number."""
    if isinstance(expr, int):
        return expr
    expr = sympy.sympify(expr)
    if expr.is_Integer:
        return int(expr)
    if not expr.free_symbols:
        raise SymbolicShapeError(f"size expression {expr} is not an integer")
    return expr


def format_dim(d: Dim) -> str:
    """The printed form of a dimension (parses back with :func:`parse_dim`)."""
    return str(d).replace(" ", "")


def from_torch(size: Any) -> Dim:
    """A dimension from an int or a sympy expression (torch's ``FloorDiv`` /
    ``Mod`` spelled as sympy's). A torch ``SymInt`` must go through the
    frontend's :class:`irc.frontends.symbolic_sizes.SizeNormalizer` first (it
    applies dynamo's guards), so it is refused here."""
    if isinstance(size, bool):
        raise SymbolicShapeError(f"size {size!r} is not an integer")
    if isinstance(size, int):
        return size
    if isinstance(size, torch.SymInt):
        raise SymbolicShapeError(f"a SymInt size ({size}) reached the IR without the frontend's "
                                 "size normaliser (an irc bug)")
    if isinstance(size, sympy.Expr):
        return canonical(to_sympy(size))
    raise SymbolicShapeError(f"size {size!r} ({type(size).__name__}) is not an integer")


def to_sympy(expr: sympy.Basic) -> sympy.Basic:
    """torch's sympy functions as plain sympy (so the text parses back), or an
    error naming the function irc does not model."""
    from torch.utils._sympy import functions as tf
    if expr.is_Symbol:
        return symbol(str(expr))
    if expr.is_Atom:
        return expr
    args = [to_sympy(a) for a in expr.args]
    if isinstance(expr, (tf.FloorDiv,)):
        num, den = _numbers(expr, args)
        return sympy.floor(num / den)
    if isinstance(expr, (tf.CleanDiv,)):
        num, den = _numbers(expr, args)
        return num / den
    if isinstance(expr, (tf.PythonMod, tf.Mod)) or isinstance(expr, sympy.Mod):
        num, den = _numbers(expr, args)
        return sympy.Mod(num, den)
    if isinstance(expr, (sympy.Add, sympy.Mul, sympy.Pow, sympy.Max, sympy.Min, sympy.floor,
                         sympy.core.relational.Relational)):
        return expr.func(*args)  # pyright: ignore[reportArgumentType]  # each operand as to_sympy made it, of the kind it was
    raise SymbolicShapeError(f"size expression {expr} uses {type(expr).__name__}, which irc "
                             "does not model")


def _numbers(expr: sympy.Basic, args: Sequence[sympy.Basic]) -> tuple[sympy.Expr, sympy.Expr]:
    """The two numeric operands of a division or remainder ``expr``."""
    if len(args) != 2 or not all(isinstance(a, sympy.Expr) for a in args):
        raise SymbolicShapeError(f"size expression {expr} does not divide two numbers")
    num, den = args
    assert isinstance(num, sympy.Expr) and isinstance(den, sympy.Expr)
    return num, den


def is_static(d: Dim) -> bool:
    return isinstance(d, int)


def known_nonnegative(d: Dim) -> bool:
    """Whether ``d >= 0`` is proven (for every positive value of its symbols);
    False when it is not known (never a guess)."""
    if isinstance(d, int):
        return d >= 0
    return sympy.sympify(d).is_nonnegative is True


def known_le(a: Dim, b: Dim) -> bool:
    """Whether ``a <= b`` is proven for every binding (False when unknown)."""
    return known_nonnegative(b - a)  # type: ignore[operator]


def known_lt(a: Dim, b: Dim) -> bool:
    """Whether ``a < b`` is proven for every binding (False when unknown)."""
    return known_nonnegative(b - a - 1)  # type: ignore[operator]


def known_positive(d: Dim) -> bool:
    return known_lt(0, d)


def known_negative(d: Dim) -> bool:
    return known_lt(d, 0)


def maybe_more_than_one(d: Dim) -> bool:
    """A static size above 1, or a symbolic one (which may be 1 or more: a loop runs it)."""
    return not isinstance(d, int) or d > 1


def symbols_of(dims: Iterable[Dim]) -> set[str]:
    """Names of the symbols the dimensions mention."""
    out: set[str] = set()
    for d in dims:
        if not isinstance(d, int):
            out |= {str(s) for s in d.free_symbols}
    return out


def evaluate(d: Dim, binding: Mapping[str, int]) -> int:
    """The value of ``d`` under ``binding`` (every symbol it mentions bound)."""
    if isinstance(d, int):
        return d
    if d.is_Symbol:
        value = binding.get(str(d))
        if value is None:
            raise SymbolicShapeError(f"size {format_dim(d)}: no value for {d}")
        return value
    names, fn = _compiled(d)
    try:
        result = fn(*(binding[n] for n in names))
    except KeyError:
        missing = sorted(set(names) - set(binding))
        raise SymbolicShapeError(f"size {format_dim(d)}: no value for {', '.join(missing)}") from None
    if int(result) != result:
        raise SymbolicShapeError(f"size {format_dim(d)} is not an integer at {dict(binding)}")
    return int(result)


@lru_cache(maxsize=4096)
def _compiled(d: sympy.Expr) -> tuple[tuple[str, ...], Any]:
    """``d`` as a python function of its symbols (sizes are evaluated on every
    call of a compiled program: sympy's ``subs`` would cost ~100 us each)."""
    names = tuple(sorted(str(s) for s in d.free_symbols))
    return names, sympy.lambdify([symbol(n) for n in names], d, modules=[{"floor": _floor}, "math"])


def _floor(x: Any) -> int:
    import math
    return math.floor(x)


# ----------------------------------------------------------------------------
# types


def make_tensor_type(element: Attribute, dims: Sequence[Any]) -> TensorType[Attribute]:
    """``tensor<...>`` of ``dims`` (ints, sympy expressions or SymInts)."""
    canon = [from_torch(d) for d in dims]
    static = [d for d in canon if isinstance(d, int)]
    if len(static) == len(canon):
        return TensorType(element, static)
    shape = [d if isinstance(d, int) else DYNAMIC_INDEX for d in canon]
    encoding = ArrayAttr([StringAttr(format_dim(d)) for d in canon if not isinstance(d, int)])
    return TensorType(element, shape, encoding)


def type_dims(t: Attribute) -> tuple[Dim, ...]:
    """The dimensions of a tensor/memref type, ``?`` as their size expressions."""
    shape = [int(d) for d in t.get_shape()]  # type: ignore[attr-defined]
    if DYNAMIC_INDEX not in shape:
        return tuple(shape)
    encoding = getattr(t, "encoding", None)
    exprs = [a.data for a in encoding.data] if isinstance(encoding, ArrayAttr) and all(
        isinstance(a, StringAttr) for a in encoding.data) else []
    if len(exprs) != shape.count(DYNAMIC_INDEX):
        raise SymbolicShapeError(f"type {t}: each '?' needs one size expression in the encoding "
                                 f"(got {len(exprs)} for {shape.count(DYNAMIC_INDEX)})")
    it = iter(exprs)
    return tuple(parse_dim(next(it)) if d == DYNAMIC_INDEX else d for d in shape)


def is_symbolic_type(t: Attribute) -> bool:
    shape = getattr(t, "get_shape", None)
    return shape is not None and DYNAMIC_INDEX in tuple(int(d) for d in shape())


def module_is_symbolic(module: ModuleOp) -> bool:
    """Whether any value in ``module`` has a ``?`` dimension (or it reads a size: ``graph.size``)."""
    from xdsl.dialects import func
    for op in module.walk():
        if op.name in ("graph.size", "graph.iota") or (isinstance(op, func.FuncOp) and any(size_arg_names(op))):
            return True
        if op.name == "graph.slice" and any(isinstance(op.properties[k], StringAttr)
                                            for k in ("start", "end")):
            return True
        for v in (*op.operands, *op.results):
            if is_symbolic_type(v.type):
                return True
        for region in op.regions:
            for block in region.blocks:
                if any(is_symbolic_type(a.type) for a in block.args):
                    return True
    return False


# ----------------------------------------------------------------------------
# binding concrete inputs


SIZE_ARG = "irc.size"
"""The argument attribute naming the size symbol an ``index`` argument of
``@main`` carries (dynamo's SymInt inputs: ``%s1: index {irc.size = "s1"}``)."""


def size_arg_names(main: Any) -> list[str | None]:
    """Per argument of ``main``: the symbol it carries (an ``index`` size argument) or None."""
    attrs = main.arg_attrs.data if main.arg_attrs is not None else ()
    names: list[str | None] = []
    for i in range(len(main.body.block.args)):
        entry = attrs[i].data.get(SIZE_ARG) if i < len(attrs) else None
        names.append(entry.data if isinstance(entry, StringAttr) else None)
    return names


def bind_inputs(arg_types: Sequence[Attribute], size_names: Sequence[str | None],
                inputs: Sequence[Any]) -> dict[str, int]:
    """:func:`bind` for a call of ``@main``: size arguments (ints) bind their
    symbols first, then the tensors' shapes are read and checked."""
    given = {name: int(v) for name, v in zip(size_names, inputs) if name is not None}
    tensors = [(t, tuple(v.shape)) for t, name, v in zip(arg_types, size_names, inputs)
               if name is None]
    return bind([t for t, _ in tensors], [s for _, s in tensors], given=given)


def bind(arg_types: Sequence[Attribute], shapes: Sequence[Sequence[int]],
         names: Sequence[str] = (), given: Mapping[str, int] | None = None) -> dict[str, int]:
    """Symbol values read from concrete input shapes; every dimension checked.

    A symbol is bound from ``given`` or else the first dimension that is
    exactly that symbol; then every dimension of every input must equal its
    expression's value. Raises :class:`InputMismatchError` naming the input,
    the dimension and both sizes."""
    binding: dict[str, int] = dict(given or {})
    all_dims = [type_dims(t) for t in arg_types]
    for i, (dims, shape) in enumerate(zip(all_dims, shapes)):
        if len(dims) != len(shape):
            raise InputMismatchError(f"{_input_name(i, names)}: rank {len(shape)}, compiled for "
                                     f"rank {len(dims)} ({_fmt(dims)})")
        for d, n in zip(dims, shape):
            if not isinstance(d, int) and d.is_Symbol and str(d) not in binding:
                binding[str(d)] = int(n)
    for i, (dims, shape) in enumerate(zip(all_dims, shapes)):
        for j, (d, n) in enumerate(zip(dims, shape)):
            # c*s (a size dynamo guarded divisible by c): s = n / c, when it divides
            if isinstance(d, sympy.Mul) and len(d.args) == 2 and d.args[0].is_Integer \
                    and d.args[1].is_Symbol and str(d.args[1]) not in binding:
                c = int(d.args[0])
                if int(n) % c:
                    raise InputMismatchError(f"{_input_name(i, names)}: dimension {j} has size {n}, "
                                             f"compiled for a multiple of {c} ({format_dim(d)})")
                binding[str(d.args[1])] = int(n) // c
    for i, (dims, shape) in enumerate(zip(all_dims, shapes)):
        for j, (d, n) in enumerate(zip(dims, shape)):
            if symbols_of([d]) - set(binding):
                raise InputMismatchError(f"{_input_name(i, names)}: dimension {j} is "
                                         f"{format_dim(d)}, which no input gives alone")
            want = evaluate(d, binding)
            if want != n:
                why = f" ({format_dim(d)} = {want} from the other inputs)" if not isinstance(d, int) else ""
                raise InputMismatchError(f"{_input_name(i, names)}: dimension {j} has size {n}, "
                                         f"compiled for {want}{why}")
    return binding


class Binder:
    """:func:`bind_inputs` planned once for a fixed list of argument types:
    which dimension binds which symbol, and which dimensions are checked
    (per call, a few list walks instead of re-reading the types)."""

    def __init__(self, arg_types: Sequence[Attribute], size_names: Sequence[str | None]) -> None:
        self.arg_types, self.size_names = list(arg_types), list(size_names)
        self.sizes = [(i, n) for i, n in enumerate(size_names) if n is not None]
        self.tensors = [i for i, n in enumerate(size_names) if n is None]
        self.ranks = {i: len(type_dims(arg_types[i])) for i in self.tensors}
        self.static: list[tuple[int, int, int]] = []
        self.symbolic: list[tuple[int, int, Dim]] = []
        for i in self.tensors:
            for j, d in enumerate(type_dims(arg_types[i])):
                (self.static if isinstance(d, int) else self.symbolic).append((i, j, d))  # type: ignore[arg-type]

    def __call__(self, inputs: Sequence[Any]) -> dict[str, int]:
        try:
            shapes = {i: inputs[i].shape for i in self.tensors}
            if any(len(shapes[i]) != r for i, r in self.ranks.items()):
                raise ValueError
            for i, j, d in self.static:
                if shapes[i][j] != d:
                    raise ValueError
            binding = {n: int(inputs[i]) for i, n in self.sizes}
            for i, j, d in self.symbolic:
                name = str(d) if d.is_Symbol else None  # type: ignore[union-attr]
                if name is None:
                    continue
                value = binding.setdefault(name, shapes[i][j])
                if value != shapes[i][j]:
                    raise ValueError
            for i, j, d in self.symbolic:
                if not d.is_Symbol and evaluate(d, binding) != shapes[i][j]:  # type: ignore[union-attr]
                    raise ValueError
            return binding
        except (ValueError, SymbolicShapeError, AttributeError, IndexError):
            # the slow path says exactly what is wrong (or binds what the fast one could not)
            return bind_inputs(self.arg_types, self.size_names, inputs)


def _input_name(i: int, names: Sequence[str]) -> str:
    return f"input {i}" + (f" ({names[i]})" if i < len(names) and names[i] else "")


def _fmt(dims: Sequence[Dim]) -> str:
    return "[" + ", ".join(format_dim(d) for d in dims) + "]"


# ----------------------------------------------------------------------------
# specialisation


def specialize_type(t: Attribute, binding: Mapping[str, int]) -> Attribute:
    """``t`` with every ``?`` replaced by its value under ``binding``."""
    if not isinstance(t, TensorType) or not is_symbolic_type(t):
        return t
    return TensorType(t.get_element_type(), [evaluate(d, binding) for d in type_dims(t)])


__all__ = ["Binder", "Dim", "known_le", "known_lt", "known_negative", "known_nonnegative",
           "known_positive", "maybe_more_than_one", "SIZE_ARG", "SymbolicShapeError", "bind", "bind_inputs", "canonical", "evaluate", "format_dim",
           "from_torch", "is_static", "is_symbolic_type", "make_tensor_type", "module_is_symbolic",
           "parse_dim", "size_arg_names", "specialize_type", "symbol", "symbols_of",
           "to_sympy", "type_dims"]
