"""irc: a compiler for PyTorch models.

    fast = irc.compile(model, target="cpu")
    @irc.compile(target="cuda")
    def block(x, w): ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from irc.errors import (
    BackendError,
    ConfigError,
    InputMismatchError,
    InternalCompilerError,
    IrcError,
    NothingCompiledError,
    PackageError,
    PassError,
    UnsupportedOpError,
)

if TYPE_CHECKING:  # imported lazily below; named here for type checkers
    from irc.api import compile
    from irc.backends.registry import register_backend
    from irc.exporter import export
    from irc.frontends.capture import IrcWarning
    from irc.loader import load

if TYPE_CHECKING:  # imported on first use (module __getattr__ below)
    from irc.profile import profile

__version__ = "0.1.0"
__all__ = [
    "BackendError", "ConfigError", "InputMismatchError", "InternalCompilerError", "IrcError",
    "IrcWarning", "NothingCompiledError", "PackageError", "PassError", "UnsupportedOpError", "compile",
    "export", "load", "profile", "register_backend",
]


def __getattr__(name: str) -> Any:
    # Lazy: `import irc` stays cheap (no torch._dynamo, llvmlite or triton).
    if name == "compile":
        from irc.api import compile
        return compile
    if name == "IrcWarning":
        from irc.frontends.capture import IrcWarning
        return IrcWarning
    if name == "register_backend":
        from irc.backends.registry import register_backend
        return register_backend
    if name == "export":
        from irc.exporter import export
        return export
    if name == "load":  # the loader imports neither xdsl, llvmlite, triton nor dynamo
        from irc.loader import load
        return load
    if name == "profile":
        from irc.profile import profile
        return profile
    if name == "debug":
        import irc.debug as debug
        return debug
    raise AttributeError(f"module 'irc' has no attribute {name!r}")
