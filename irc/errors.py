"""The exceptions irc raises.

Every error a user can cause is an :class:`IrcError`. The CLI catches IrcError
and prints its message (no traceback). A crash inside a pass or a backend is a
bug in irc and says so: :class:`InternalCompilerError` (also an IrcError, so
it reaches the user as a message with a reproducer, never as "unsupported").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


class IrcError(Exception):
    """Base class of every error irc reports to a user."""


class DiagnosticError(IrcError):
    """An error tied to a place in a .mlir file: ``file:line:col: error: msg``.

    ``str()`` gives the full diagnostic including the offending source line and
    a caret under the column, as mlir-opt prints it.
    """

    def __init__(self, message: str, filename: str = "<input>", line: int = 0,
                 col: int = 0, source_line: str | None = None) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        self.col = col
        self.source_line = source_line
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.filename}:{self.line}:{self.col}: error: {self.message}"
        if self.source_line is not None:
            caret = " " * max(self.col - 1, 0) + "^"
            text += f"\n{self.source_line}\n{caret}"
        return text


class VerificationError(DiagnosticError):
    """The IR is well-formed text but breaks an op's invariants."""


class ParseError(DiagnosticError):
    """The .mlir text is malformed."""


class UnsupportedOpError(IrcError):
    """An operator irc cannot compile, named with the user's source line."""

    def __init__(self, op: str, source: str | None = None, reason: str = "") -> None:
        self.op = op
        self.source = source
        where = f" at {source}" if source else ""
        why = f": {reason}" if reason else ""
        super().__init__(f"unsupported operator {op}{where}{why}")


class InputMismatchError(IrcError, TypeError):
    """A compiled function was called with a tensor it was not compiled for."""


class PassError(IrcError):
    """A pass name, option or pipeline string is wrong."""


class ConfigError(IrcError):
    """A configuration key or value is wrong."""


class BackendError(IrcError):
    """A backend is unknown, broken, or cannot run here (e.g. no CUDA device)."""


class CacheError(IrcError):
    """A compile-cache entry is unusable (it is then rebuilt, not trusted)."""


class PackageError(IrcError):
    """An exported package cannot be loaded: wrong format version, a checksum
    mismatch, a missing CPU feature, or a file another user could have written."""


class NothingCompiledError(IrcError):
    """``strict=True``: a compiled callable's call ran nothing compiled (no graph
    reached irc, or dynamo stopped compiling at its recompile limit)."""


class InternalCompilerError(IrcError):
    """A bug in irc: a pass or a backend crashed on IR it should handle.

    Not the user's mistake and not an unsupported operator. ``stage`` names
    where (``pass 'fuse'``, ``backend 'cpu'``), ``pass_name`` the pass when it
    was one, ``error`` the original exception as text. ``reproducer`` is the
    .mlir file holding the IR the stage received and ``command`` the one-line
    ``irc opt`` (or ``irc translate``) that reproduces the crash from it.
    """

    def __init__(self, stage: str, error: str, reproducer: str | None = None,
                 command: str | None = None, pass_name: str | None = None,
                 note: str | None = None) -> None:
        self.stage = stage
        self.error = error
        self.reproducer = reproducer
        self.command = command
        self.pass_name = pass_name
        lines = [f"internal compiler error in {stage}: {error}",
                 "  this is a bug in irc, not in your program; please report it with the file below"]
        if reproducer is not None:
            lines.append(f"  the IR it received: {reproducer}")
        if command is not None:
            lines.append(f"  reproduce: {command}")
        if note:
            lines.append(f"  {note}")
        super().__init__("\n".join(lines))


def unwrapping_irc_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` re-raising the irc errors that dynamo wrapped in BackendCompilerFailed."""
    from torch._dynamo.exc import BackendCompilerFailed

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BackendCompilerFailed as err:
            inner = getattr(err, "inner_exception", None)
            while isinstance(inner, BackendCompilerFailed):
                inner = getattr(inner, "inner_exception", None)
            if isinstance(inner, IrcError):
                raise inner.with_traceback(None) from None
            raise
    return call
