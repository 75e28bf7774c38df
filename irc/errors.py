"""The exceptions irc raises for user mistakes.

Every error a user can cause is an :class:`IrcError`. The CLI catches IrcError
and prints its message (no traceback); anything else escaping is a bug in irc.
"""

from __future__ import annotations


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


class NothingCompiledError(IrcError):
    """``strict=True``: a compiled callable's call ran nothing compiled (no graph
    reached irc, or dynamo stopped compiling at its recompile limit)."""
