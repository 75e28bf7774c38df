"""Scalar expression nodes of the loop lowering and their emission as scf/arith/math.

A kernel's computation is first described as a DAG of interned :class:`Node`\\ s
(hash-consed: structurally equal nodes are the same object, so common
subexpressions are shared for free). Each node knows the loop variables it
depends on (``deps``). :class:`Emitter` then writes xDSL ops for the nodes a
store needs, placing each one in the innermost *open* loop among its
dependencies: loop-invariant code is hoisted (a row's max is computed once per
row, outside the column loop; a row's base offset outside the innermost loop).

Reductions are nodes too: emitting one opens ``scf.for`` loops with
``iter_args`` at the reduction's placement level, so a row-wise softmax becomes
one row loop holding three inner loops (max, sum, write).
"""

from __future__ import annotations

import math as pymath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xdsl.dialects import arith, math, memref, scf
from xdsl.dialects.builtin import (
    AnyFloat,
    FloatAttr,
    IndexType,
    IntegerAttr,
    IntegerType,
    MemRefType,
)
from xdsl.ir import Attribute, Block, Operation, SSAValue

from irc.ir import index as ix

INDEX = IndexType()
I64 = IntegerType(64)


class Node:
    """One scalar value of a kernel. Create through :meth:`NodeTable.node`."""

    __slots__ = ("kind", "args", "type", "deps", "serial")

    def __init__(self, kind: str, args: tuple, type: Attribute, deps: frozenset[int],
                 serial: int) -> None:
        self.kind = kind
        self.args = args
        self.type = type
        self.deps = deps
        self.serial = serial

    def __repr__(self) -> str:
        return f"Node#{self.serial}({self.kind}, {self.type})"


def _arg_deps(arg: Any) -> frozenset[int]:
    if isinstance(arg, Node):
        return arg.deps
    if isinstance(arg, ix.Lin):
        return ix.deps(arg)
    if isinstance(arg, tuple):
        out: frozenset[int] = frozenset()
        for a in arg:
            out |= _arg_deps(a)
        return out
    return frozenset()


def _arg_key(arg: Any) -> Any:
    if isinstance(arg, Node):
        return ("n", arg.serial)
    if isinstance(arg, ix.Lin):
        return ("l", arg.key())
    if isinstance(arg, tuple):
        return tuple(_arg_key(a) for a in arg)
    if isinstance(arg, ix.Var):
        return ("v", arg.id)
    if isinstance(arg, (SSAValue, Attribute)):
        return ("o", id(arg))
    return arg


class NodeTable:
    """Interns nodes; hands out fresh loop variables."""

    def __init__(self) -> None:
        self._nodes: dict[Any, Node] = {}
        self._next_var = 0

    def fresh_var(self, size: ix.Size) -> ix.Var:
        self._next_var += 1
        return ix.Var(self._next_var, size)

    def node(self, kind: str, args: tuple, type: Attribute,
             bound: frozenset[int] = frozenset()) -> Node:
        key = (kind, _arg_key(args), _arg_key(type))
        found = self._nodes.get(key)
        if found is None:
            found = Node(kind, args, type, _arg_deps(args) - bound, len(self._nodes))
            self._nodes[key] = found
        return found

    # -- constructors ---------------------------------------------------
    def const(self, value: float | int | bool, type: Attribute) -> Node:
        if isinstance(type, AnyFloat):
            value = float(value)
        else:
            value = int(value)
        return self.node("const", (value,), type)

    def op(self, name: str, type: Attribute, *operands: Node, extra: Any = None) -> Node:
        return self.node("op", (name, tuple(operands), extra), type)

    def load(self, buffer: SSAValue, offset: ix.Lin) -> Node:
        assert isinstance(buffer.type, MemRefType)
        return self.node("load", (buffer, offset), buffer.type.element_type)

    def index(self, lin: ix.Lin) -> Node:
        return self.node("index", (lin,), INDEX)

    def reduce(self, combine: str, inits: tuple[Node, ...], body: Node, rvars: tuple[ix.Var, ...],
               origin: Any, type: Attribute) -> Node:
        bound = frozenset(v.id for v in rvars)
        return self.node("reduce", (combine, inits, body, rvars, origin), type, bound)


_BINARY: dict[str, Callable[..., Operation]] = {
    "addf": arith.AddfOp, "subf": arith.SubfOp, "mulf": arith.MulfOp, "divf": arith.DivfOp,
    "maximumf": arith.MaximumfOp, "minimumf": arith.MinimumfOp,
    "addi": arith.AddiOp, "subi": arith.SubiOp, "muli": arith.MuliOp, "divsi": arith.DivSIOp,
    "remsi": arith.RemSIOp, "maxsi": arith.MaxSIOp, "minsi": arith.MinSIOp,
    "andi": arith.AndIOp, "ori": arith.OrIOp, "xori": arith.XOrIOp, "shrsi": arith.ShRSIOp,
    "floordivsi": arith.FloorDivSIOp, "powf": math.PowFOp, "atan2": math.Atan2Op,
}
_UNARY: dict[str, Callable[..., Operation]] = {
    "negf": arith.NegfOp, "absf": math.AbsFOp, "exp": math.ExpOp, "exp2": math.Exp2Op,
    "log": math.LogOp, "log2": math.Log2Op, "log1p": math.Log1pOp, "expm1": math.ExpM1Op,
    "sqrt": math.SqrtOp, "rsqrt": math.RsqrtOp, "sin": math.SinOp, "cos": math.CosOp,
    "tan": math.TanOp, "tanh": math.TanhOp, "erf": math.ErfOp, "floor": math.FloorOp,
    "ceil": math.CeilOp, "roundeven": math.RoundEvenOp, "trunc": math.TruncOp,
}
_CAST: dict[str, Callable[..., Operation]] = {
    "extf": arith.ExtFOp, "truncf": arith.TruncFOp, "sitofp": arith.SIToFPOp,
    "uitofp": arith.UIToFPOp, "fptosi": arith.FPToSIOp, "extsi": arith.ExtSIOp,
    "extui": arith.ExtUIOp, "trunci": arith.TruncIOp, "index_cast": arith.IndexCastOp,
}


def build_op(name: str, type: Attribute, operands: list[SSAValue], extra: Any) -> Operation:
    """The xDSL op computing ``name`` on ``operands`` with result ``type``."""
    if name in _BINARY:
        return _BINARY[name](operands[0], operands[1])
    if name in _UNARY:
        return _UNARY[name](operands[0])
    if name in _CAST:
        return _CAST[name](operands[0], type)
    if name == "cmpf":
        return arith.CmpfOp(operands[0], operands[1], extra)
    if name == "cmpi":
        return arith.CmpiOp(operands[0], operands[1], extra)
    if name == "select":
        return arith.SelectOp(operands[0], operands[1], operands[2])
    raise KeyError(f"no scalar op '{name}'")


def constant_op(value: float | int, type: Attribute) -> Operation:
    if isinstance(type, AnyFloat):
        if pymath.isnan(value):
            return arith.ConstantOp(FloatAttr(float("nan"), type))
        return arith.ConstantOp(FloatAttr(float(value), type))
    if isinstance(type, IntegerType) and type.width.data == 1:
        return arith.ConstantOp(IntegerAttr(-1 if value else 0, type))
    assert isinstance(type, (IntegerType, IndexType)), type
    return arith.ConstantOp(IntegerAttr(int(value), type))


@dataclass
class Scope:
    """One open region: the function body (level 0) or a loop body."""

    block: Block
    var: ix.Var | None
    iv: SSAValue | None
    child: Operation | None = None  # insert before this op (None: at the end)
    memo: dict[Any, SSAValue] = field(default_factory=dict)


# combine op name, identity element per reduction kind and type class
def combine_ops(emitter: "Emitter", combine: str, accs: list[SSAValue], value: SSAValue,
                iv: SSAValue | None, level: int) -> list[SSAValue]:
    """Emit ``acc <- combine(acc, value)`` at ``level``; returns the new accumulators."""
    put = emitter.put
    if combine in ("argmax", "argmin"):
        best, idx = accs
        is_float = isinstance(value.type, AnyFloat)
        if is_float:
            pred = "ogt" if combine == "argmax" else "olt"
            better = put(arith.CmpfOp(value, best, pred), level)
            x_nan = put(arith.CmpfOp(value, value, "uno"), level)
            b_ord = put(arith.CmpfOp(best, best, "ord"), level)
            new_nan = put(arith.AndIOp(x_nan, b_ord), level)
            take = put(arith.OrIOp(better, new_nan), level)
        else:
            take = put(arith.CmpiOp(value, best, "sgt" if combine == "argmax" else "slt"), level)
        pos = put(arith.IndexCastOp(iv, I64), level) if iv is not None else emitter.const(0, I64)
        return [put(arith.SelectOp(take, value, best), level),
                put(arith.SelectOp(take, pos, idx), level)]
    return [put(_BINARY[combine](accs[0], value), level)]


def _from_reduction(d: Node, depth: int) -> bool:
    """Is ``d`` a reduction, or sqrt/+/*// of one (a few ops deep)?"""
    if d.kind == "reduce":
        return True
    if depth == 0 or d.kind != "op" or d.args[0] not in ("sqrt", "addf", "mulf", "divf"):
        return False
    return any(_from_reduction(o, depth - 1) for o in d.args[1])


class Emitter:
    """Writes nodes as ops into a function body, hoisting by dependencies."""

    def __init__(self, table: NodeTable, body: Block, anchor: Operation,
                 materialise: Callable[[Node, bool], Node | None],
                 sizes: Mapping[str, SSAValue] | None = None) -> None:
        self.table = table
        self.scopes: list[Scope] = [Scope(body, None, None, anchor)]
        self.materialise = materialise
        self.sizes = sizes or {}
        """The kernel's size arguments by symbol (a kernel compiled for every binding)."""

    def index_value(self, n: ix.Size) -> SSAValue:
        """An ``index`` value of ``n``: a constant, or for a size expression its
        value computed once at the top of the kernel from the size arguments."""
        if isinstance(n, int):
            return self.const(n, INDEX)
        memo = self.scopes[0].memo
        key = ("size", n)
        found = memo.get(key)
        if found is None:
            found = memo[key] = self._size_expr(n)
        return found

    def _size_expr(self, e: Any) -> SSAValue:
        import sympy

        from irc.ir.symbols import SymbolicShapeError
        if e.is_Integer:
            return self.const(int(e), INDEX)
        if e.is_Symbol:
            value = self.sizes.get(str(e))
            if value is None:
                raise SymbolicShapeError(f"lower-to-loops: size {e} is not an argument of the kernel")
            return value
        if isinstance(e, (sympy.Add, sympy.Mul, sympy.Max, sympy.Min)):
            op = {sympy.Add: arith.AddiOp, sympy.Mul: arith.MuliOp, sympy.Max: arith.MaxSIOp,
                  sympy.Min: arith.MinSIOp}[type(e)]
            if isinstance(e, sympy.Mul) and any(not a.is_Integer and a.is_Rational for a in e.args):
                raise SymbolicShapeError(f"lower-to-loops: size {e} is not an integer expression")
            values = [self.index_value(_as_size(a)) for a in e.args]
            acc = values[0]
            for v in values[1:]:
                acc = self.put(op(acc, v), 0)
            return acc
        if isinstance(e, sympy.Pow) and e.exp.is_Integer and int(e.exp) > 0:
            base = self.index_value(_as_size(e.base))
            acc = base
            for _ in range(int(e.exp) - 1):
                acc = self.put(arith.MuliOp(acc, base), 0)
            return acc
        if isinstance(e, sympy.floor):
            num, den = sympy.fraction(sympy.together(e.args[0]))
            return self.put(arith.FloorDivSIOp(self.index_value(_as_size(num)),
                                               self.index_value(_as_size(den))), 0)
        if isinstance(e, sympy.Mod):
            return self.put(arith.RemSIOp(self.index_value(_as_size(e.args[0])),
                                          self.index_value(_as_size(e.args[1]))), 0)
        raise SymbolicShapeError(f"lower-to-loops: cannot compute the size {e} in a kernel")

    # -- placement --------------------------------------------------------
    def level_of(self, deps: frozenset[int]) -> int:
        level = 0
        for i, s in enumerate(self.scopes):
            if s.var is not None and s.var.id in deps:
                level = i
        missing = deps - {s.var.id for s in self.scopes if s.var is not None}
        if missing:
            raise AssertionError(f"loop variables {sorted(missing)} are not open")
        return level

    def put(self, op: Operation, level: int) -> SSAValue:
        scope = self.scopes[level]
        if scope.child is not None:
            scope.block.insert_op_before(op, scope.child)
        else:
            scope.block.add_op(op)
        return op.results[0] if op.results else None  # type: ignore[return-value]

    def const(self, value: float | int, type: Attribute) -> SSAValue:
        return self.emit(self.table.const(value, type))

    def redundant(self, deps: frozenset[int], level: int) -> bool:
        """Would a value with these deps be recomputed by an enclosing loop it ignores?"""
        return any(s.var is not None and s.var.id not in deps for s in self.scopes[1:level + 1])

    # -- emission ---------------------------------------------------------
    def emit(self, node: Node) -> SSAValue:
        level = self.level_of(node.deps)
        memo = self.scopes[level].memo
        found = memo.get(node)
        if found is not None:
            return found
        value = self._emit(node, level)
        memo[node] = value
        return value

    def _emit(self, node: Node, level: int) -> SSAValue:
        kind = node.kind
        if kind == "const":
            return self.put(constant_op(node.args[0], node.type), level)
        if kind == "load":
            buffer, offset = node.args
            return self.put(memref.LoadOp.get(buffer, [self.emit_lin(offset)]), level)
        if kind == "index":
            return self.emit_lin(node.args[0])
        if kind == "tee":  # store the value, then use it (see loops_stash)
            inner, buffer, offset = node.args
            value = self.emit(inner)
            self.put(memref.StoreOp.get(value, buffer, [self.emit_lin(offset)]), level)
            return value
        if kind == "op":
            name, operands, extra = node.args
            if name == "divf" and self._hoistable_divisor(operands[1], level):
                # x / d with d invariant in this loop: x * (1/d), one division per
                # row (like torch's softmax and layer norm); d is a reduction or a
                # square root, never denormal enough for 1/d to overflow in practice
                recip = self.table.op("divf", node.type, self.table.const(1.0, node.type),
                                      operands[1])
                return self.put(arith.MulfOp(self.emit(operands[0]), self.emit(recip)), level)
            values = [self.emit(o) for o in operands]
            return self.put(build_op(name, node.type, values, extra), level)
        if kind == "reduce":
            replacement = self.materialise(node, self.redundant(node.deps, level))
            if replacement is not None:
                return self.emit(replacement)
            return self.emit_reduce(node, level)
        raise AssertionError(f"unknown node kind {kind}")

    def _hoistable_divisor(self, d: Node, level: int) -> bool:
        if not isinstance(d.type, AnyFloat) or self.level_of(d.deps) >= level:
            return False
        return _from_reduction(d, 4)

    def emit_lin(self, lin: ix.Lin) -> SSAValue:
        """An ``index`` value for ``lin``, outer-loop parts computed outside inner loops."""
        if lin.is_const:
            return self.index_value(lin.const)
        level = self.level_of(ix.deps(lin))
        memo = self.scopes[level].memo
        key = ("lin", lin)
        found = memo.get(key)
        if found is not None:
            return found
        outer_terms = tuple(t for t in lin.terms if self.level_of(ix.atom_deps(t[0])) < level)
        inner_terms = [t for t in lin.terms if t not in outer_terms]
        acc: SSAValue | None = None
        outer = ix.Lin(lin.const, outer_terms)
        if not outer.is_const or outer.const != 0:
            acc = self.emit_lin(outer)
        for a, k in inner_terms:
            term = self.emit_atom(a)
            if k == -1 and acc is not None:
                acc = self.put(arith.SubiOp(acc, term), level)
                continue
            if k != 1:
                term_key = ("term", a, k)
                scaled = memo.get(term_key)
                if scaled is None:
                    scaled = self.put(arith.MuliOp(term, self.index_value(k)), level)
                    memo[term_key] = scaled
                term = scaled
            acc = term if acc is None else self.put(arith.AddiOp(acc, term), level)
        assert acc is not None
        memo[key] = acc
        return acc

    def emit_atom(self, a: ix.Atom) -> SSAValue:
        if isinstance(a, ix.Var):
            for s in self.scopes:
                if s.var is not None and s.var.id == a.id:
                    assert s.iv is not None
                    return s.iv
            raise AssertionError(f"loop variable {a.id} is not open")
        level = self.level_of(ix.atom_deps(a))
        memo = self.scopes[level].memo
        key = ("atom", a)
        found = memo.get(key)
        if found is not None:
            return found
        if isinstance(a, ix.Div):
            value = self.put(arith.DivSIOp(self.emit_lin(a.lin), self.index_value(a.m)), level)
        elif isinstance(a, ix.Clamp):
            x = self.put(arith.MaxSIOp(self.emit_lin(a.lin), self.index_value(a.lo)), level)
            value = self.put(arith.MinSIOp(x, self.index_value(a.hi)), level)
        else:
            raw = self.emit(a.node)
            x = self.put(arith.IndexCastOp(raw, INDEX), level)
            neg = self.put(arith.CmpiOp(x, self.const(0, INDEX), "slt"), level)
            wrapped = self.put(arith.AddiOp(x, self.index_value(a.size)), level)
            x = self.put(arith.SelectOp(neg, wrapped, x), level)
            x = self.put(arith.MaxSIOp(x, self.const(0, INDEX)), level)
            value = self.put(arith.MinSIOp(x, self.index_value(ix.norm(a.size - 1))), level)
        memo[key] = value
        return value

    # -- loops ------------------------------------------------------------
    def open_loop(self, var: ix.Var, level: int, iter_args: list[SSAValue]) -> scf.ForOp:
        """Start ``scf.for`` over ``var`` at ``level`` (which must be the innermost scope)."""
        assert level == len(self.scopes) - 1
        lb, ub, step = self.const(0, INDEX), self.index_value(var.size), self.const(1, INDEX)
        block = Block(arg_types=[INDEX, *(v.type for v in iter_args)])
        loop = scf.ForOp(lb, ub, step, iter_args, block)
        self.put(loop, level)
        self.scopes[level].child = loop
        self.scopes.append(Scope(block, var, block.args[0]))
        return loop

    def close_loop(self, loop: scf.ForOp, yielded: list[SSAValue],
                   restore_child: Operation | None) -> None:
        loop.body.block.add_op(scf.YieldOp(*yielded))
        self.scopes.pop()
        self.scopes[-1].child = restore_child

    def emit_reduce(self, node: Node, level: int) -> SSAValue:
        combine, inits, body, rvars, _origin = node.args
        saved = self.scopes[level + 1:]
        del self.scopes[level + 1:]
        child = self.scopes[level].child
        accs: list[SSAValue] = [self.emit(i) for i in inits]
        loops: list[scf.ForOp] = []
        for v in rvars:
            loop = self.open_loop(v, len(self.scopes) - 1, accs)
            loops.append(loop)
            accs = [*loop.body.block.args[1:]]
        value = self.emit(body)
        iv = self.scopes[-1].iv if rvars else None
        accs = combine_ops(self, combine, accs, value, iv, len(self.scopes) - 1)
        for i, loop in enumerate(reversed(loops)):
            self.close_loop(loop, accs, child if i == len(loops) - 1 else None)
            accs = list(loop.results)
        self.scopes[level].child = child
        self.scopes.extend(saved)
        return accs[-1] if combine in ("argmax", "argmin") else accs[0]


def _as_size(e: Any) -> ix.Size:
    return int(e) if e.is_Integer else e
