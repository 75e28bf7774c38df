"""The user's source line of an FX node, as an MLIR location and as text.

Dynamo and AOTAutograd record a Python stack trace on each node
(``node.meta["stack_trace"]``). The last frame of it is the user's line that
produced the node (dynamo only records user frames); that frame becomes the
op's ``FileLineColLoc(file, line, 0)`` and the ``file:line`` that warnings and
:class:`irc.UnsupportedOpError` print.
"""

from __future__ import annotations

import linecache
import os
import re
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.fx
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, StringAttr, UnknownLoc
from xdsl.ir import Attribute

_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')

def _internal_dirs() -> tuple[str, ...]:
    """Folders whose frames are torch's or irc's own, never the user's line."""
    import irc
    import irc.frontends
    import irc.ir
    roots = [os.path.dirname(torch.__file__), os.path.dirname(irc.__file__),
             os.path.dirname(irc.frontends.__file__), os.path.dirname(irc.ir.__file__)]
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots)


_INTERNAL = _internal_dirs()


@dataclass(frozen=True)
class SourceLine:
    """One line of user code."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def text(self) -> str:
        """The line's code (stripped), or "" when the file cannot be read."""
        return linecache.getline(self.file, self.line).strip()

    def describe(self) -> str:
        """``file:line`` plus the code on that line when available."""
        code = self.text()
        return f"{self}: {code}" if code else str(self)


def source_line(node: torch.fx.Node) -> SourceLine | None:
    """The user's line that created ``node``: the last frame of its stack
    trace that is not inside torch or irc (None when unknown)."""
    return _user_frame(node.meta.get("stack_trace") or "")


@lru_cache(maxsize=4096)
def _user_frame(trace: str) -> SourceLine | None:
    """:func:`source_line` of a stack trace text (the nodes of one source
    line, and a backward graph's nodes, share theirs: parsed once)."""
    frames = [(m["file"], int(m["line"])) for m in _FRAME.finditer(trace)]
    user = [f for f in frames if not _is_internal(f[0])]
    chosen = (user or frames or [None])[-1]
    if chosen is None:
        return None
    return SourceLine(chosen[0], chosen[1])


@lru_cache(maxsize=1024)
def _is_internal(file: str) -> bool:
    """Whether ``file`` lies in torch or irc (``realpath`` stats every path
    component: once per file)."""
    return os.path.realpath(file).startswith(_INTERNAL)


def location(node: torch.fx.Node) -> Attribute:
    """``loc("file":line:0)`` of the node's user line, or ``loc(unknown)``."""
    where = source_line(node)
    if where is None:
        return UnknownLoc()
    return FileLineColLoc(StringAttr(where.file), IntAttr(where.line), IntAttr(0))


def describe(node: torch.fx.Node) -> str:
    """``file:line: code`` of the node's user line, or a note that it is unknown."""
    where = source_line(node)
    return where.describe() if where is not None else "<unknown source line>"
