"""MLIR text in and out, with diagnostics that point into the text.

* :func:`make_context` knows every dialect irc prints at any level.
* :func:`parse_module` turns text into a module and remembers where each op
  started, so a later verifier failure can say ``file:line:col`` too.
* :func:`print_module` prints custom (or ``generic``) syntax with locations;
  ``loc(unknown)`` is left out so unlocated IR stays readable.
* :func:`verify_module` runs xDSL's verifier and turns a failure into a
  :class:`irc.errors.VerificationError` with the op's position and a caret.
"""

from __future__ import annotations

import bisect
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache

from xdsl.context import Context
from xdsl.dialects import arith, builtin, func, math, memref, scf
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BFloat16Type,
    FileLineColLoc,
    Float16Type,
    Float32Type,
    Float64Type,
    ModuleOp,
)
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError as XdslParseError
from xdsl.utils.exceptions import VerifyException

from irc.errors import ParseError, VerificationError
from irc.ir.graph import Graph

@lru_cache(maxsize=1)
def _base_dialects() -> tuple:
    from irc.ir.host import Host  # loops-level host schedule (kernel launches)
    return (builtin.Builtin, func.Func, arith.Arith, math.Math, memref.MemRef, scf.Scf, Graph,
            Host)


def make_context() -> Context:
    """A context that parses every level irc prints (graph, kernel, loops)."""
    ctx = Context()
    for dialect in _base_dialects():
        ctx.load_dialect(dialect)
    return ctx


@dataclass
class SourceMap:
    """Where each parsed op began in the text (1-based line and column)."""

    filename: str
    lines: list[str]
    positions: dict[Operation, tuple[int, int]] = field(default_factory=dict)

    def caret(self, op: Operation) -> tuple[int, int, str | None]:
        line, col = self.positions.get(op, (0, 0))
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return line, col, text


@lru_cache(maxsize=1)
def _dense_literal_constraint():  # noqa: ANN202 - an xDSL AttrConstraint
    from xdsl.dialects.builtin import (AnyFloat, ComplexType, IndexType, IntegerType,
                                       RankedStructure)
    from xdsl.irdl import base
    return base(RankedStructure[IntegerType | IndexType | AnyFloat | ComplexType])


_FLOAT_TYPES = (BFloat16Type, Float16Type, Float32Type, Float64Type)


class _HexBitsElement(Parser._TensorLiteralElement):
    """A ``0x...`` literal in a float ``dense<...>``: MLIR reads it as the
    element's bit pattern (how -inf/NaN print); xDSL 0.74 reads a number."""

    def to_type(self, parser, type):  # type: ignore[no-untyped-def]
        if isinstance(type, _FLOAT_TYPES) and isinstance(self.value, int):
            raw = self.value.to_bytes(type.compile_time_size, "little")
            return next(iter(type.iter_unpack(raw)))
        return super().to_type(parser, type)


class _RecordingParser(Parser):
    """xDSL's parser, noting where each operation's text begins, and reading
    hexadecimal float literals in dense attributes as bit patterns."""

    def _parse_tensor_literal_element(self):  # type: ignore[no-untyped-def]
        is_hex = self._current_token.text[:2] in ("0x", "0X")
        element = super()._parse_tensor_literal_element()
        if is_hex:
            return _HexBitsElement(element.is_negative, element.value, element.span)
        return element

    def __init__(self, ctx: Context, text: str, name: str, source_map: SourceMap) -> None:
        super().__init__(ctx, text, name)
        self._source_map = source_map
        # Offsets where each line starts. xDSL's Span.get_location() counts the
        # newlines before the span on every call, which made recording each
        # op's position quadratic in the file size; a bisect here is O(log n).
        self._line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def _parse_dense_literal_type(self):  # type: ignore[override]
        # Same checks as xDSL's, but its constraint is built once, not per
        # dense<...> literal (that rebuild was ~1/3 of parsing constant-heavy IR).
        type_ = self.expect(self.parse_optional_type, "Dense attribute must be typed!")
        if not _dense_literal_constraint().verifies(type_):
            self.raise_error("Expected memref, vector or tensor type of "
                             "integer, index, float, or complex type")
        if any(dim == DYNAMIC_INDEX for dim in list(type_.get_shape())):
            self.raise_error("Dense literal attribute should have a static shape.")
        return type_

    def parse_operation(self) -> Operation:
        offset = self._current_token.span.start
        op = super().parse_operation()
        line = bisect.bisect_right(self._line_starts, offset)
        self._source_map.positions[op] = (line, offset - self._line_starts[line - 1] + 1)
        return op


def parse_module(text: str, filename: str = "<input>",
                 ctx: Context | None = None) -> tuple[ModuleOp, SourceMap]:
    """Parse MLIR text; a syntax error raises ParseError with file:line:col."""
    source_map = SourceMap(filename, text.splitlines())
    parser: _RecordingParser | None = None
    try:
        # The lexer reads the first token while the parser is built: that can fail too.
        parser = _RecordingParser(ctx or make_context(), text, filename, source_map)
        module = parser.parse_module()
    except XdslParseError as err:
        loc = err.span.get_location()
        line, col = loc.line, loc.col  # type: ignore[attr-defined]
        src = source_map.lines[line - 1] if 0 < line <= len(source_map.lines) else None
        raise ParseError(_first_line(err.msg), filename, line, col, src) from None
    except Exception as err:  # noqa: BLE001 - any failure inside xDSL's parser is bad input
        # Builders and attribute constructors run while parsing (custom
        # formats); whatever they raise is a user error in the text, reported
        # at the parser's position.
        line, col = 1, 1
        if parser is not None:
            loc = parser._current_token.span.get_location()
            line, col = loc.line, loc.col  # type: ignore[attr-defined]
        src = source_map.lines[line - 1] if 0 < line <= len(source_map.lines) else None
        raise ParseError(_first_line(str(err)) or type(err).__name__, filename, line, col,
                         src) from None
    return module, source_map


def _first_line(message: str) -> str:
    lines = [ln for ln in str(message).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def print_module(op: Operation, generic: bool = False, locations: bool = True) -> str:
    """MLIR text of ``op``; with ``locations`` every known location is printed."""
    stream = io.StringIO()
    printer = Printer(stream=stream, print_generic_format=generic, print_debuginfo=locations)
    printer.print_op(op)
    text = stream.getvalue()
    if locations:
        text = text.replace(" loc(unknown)", "")
    return text.rstrip("\n") + "\n"


_OP_PREFIX = re.compile(r"^'[\w.]+' op ")


def verify_module(module: Operation, source_map: SourceMap | None = None) -> None:
    """Verify; on failure raise VerificationError at the failing op's place.

    The place is the op's position in the parsed text when known, else the
    op's own source location (the user's Python line), else the module.
    """
    try:
        module.verify()
        if isinstance(module, ModuleOp):
            from irc.ir.kernel import KernelVerifyException, is_kernel_level, verify_kernel_module
            if is_kernel_level(module):
                try:
                    verify_kernel_module(module)
                except KernelVerifyException as err:
                    raise _diagnostic(err.op, str(err), source_map) from None
    except VerifyException as err:
        op = _failing_op(module, err)
        raise _diagnostic(op, str(err), source_map) from None
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
        # An op's verify_ met a type it cannot handle (e.g. tensor<2xi7>, whose
        # element type has no torch dtype): that is invalid IR, not a crash.
        op = _failing_op(module, err)
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        prefix = f"'{op.name}' op " if op is not None else ""
        raise _diagnostic(op, f"{prefix}{message}", source_map) from None


def _failing_op(module: Operation, err: Exception) -> Operation | None:
    """xDSL's verifier does not say which op failed: re-verify op by op."""
    for op in module.walk():
        try:
            op.verify_()
            if hasattr(op, "verify"):
                _verify_local(op)
        except (VerifyException, KeyError, ValueError, TypeError, AttributeError, IndexError):
            return op
    return None


def _verify_local(op: Operation) -> None:
    # Operand/result constraints of IRDL ops, without recursing into regions.
    op_def = getattr(type(op), "get_irdl_definition", None)
    if op_def is not None:
        op_def().verify(op)


def _diagnostic(op: Operation | None, message: str, source_map: SourceMap | None) -> VerificationError:
    message = _first_line(message)
    if op is not None and source_map is not None and op in source_map.positions:
        line, col, text = source_map.caret(op)
        return VerificationError(message, source_map.filename, line, col, text)
    if op is not None and isinstance(op.location, FileLineColLoc):
        loc = op.location
        return VerificationError(message, loc.filename.data, loc.line.data, loc.column.data)
    filename = source_map.filename if source_map else "<module>"
    return VerificationError(message, filename, 0, 0)
