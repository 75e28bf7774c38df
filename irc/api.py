"""``irc.compile``: the public entry point.

    fast = irc.compile(model, target="cpu")      # nn.Module or function
    @irc.compile                                  # decorator, with or without arguments
    @irc.compile(target="reference", strict=True)

Compilation goes through ``torch.compile`` (dynamo, ``dynamic=False``) with
irc's backend, so Python control flow, graph breaks, guards and recompilation
on new shapes/dtypes behave as torch users know. A compiled ``nn.Module`` is the
same kind of module sharing the original's parameters, buffers and submodules
(``parameters()``, ``state_dict()``, ``train()/eval()`` and in-place weight
updates all work); only its call goes through the compiler. Errors irc raises
while compiling reach the caller as the :class:`irc.IrcError` they are, not
wrapped in dynamo's exceptions.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

import torch

from irc.errors import ConfigError, IrcError
from irc.dynamo_backend import register as _register_dynamo_backend
from irc.frontends.capture import IrcWarning, make_dynamo_backend

_register_dynamo_backend()  # torch.compile(..., backend="irc") works once irc.compile is used

__all__ = ["compile", "IrcWarning"]

F = TypeVar("F", bound=Callable[..., Any])


def check_target(target: str, options: Mapping[str, Any] | Any | None) -> Any:
    """The compile's :class:`irc.config.Config`; fails now (not at the first
    call) on an unknown target or a bad option."""
    from irc.backends.registry import get_backend
    from irc.config import Config
    if options is not None and not isinstance(options, (Mapping, Config)):
        raise ConfigError(f"options must be a dict, got {type(options).__name__}")
    backend = get_backend(target)
    config = Config.from_options(options, target=target)
    config.backend_options(backend)  # validates the backend's fields now
    return config


def _unwrapping(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Re-raise irc errors that dynamo wrapped in BackendCompilerFailed."""
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


def _entry_frame(call_impl: Callable[..., Any]) -> Callable[..., Any]:
    """A frame in irc's own file for dynamo to start tracing at.

    Dynamo skips frames whose code lies in ``torch.nn`` (``Module._call_impl``,
    ``Sequential.forward``, ``LayerNorm.forward``): compiling the bound
    ``_call_impl`` of a built-in module therefore captured no graph at all and
    ran it in eager. From a frame dynamo does trace, it inlines those calls,
    as ``torch.compile(module)`` does through ``external_utils.wrap_inline``.
    """
    def irc_entry(*args: Any, **kwargs: Any) -> Any:
        return call_impl(*args, **kwargs)
    # Dynamo keeps its compiled frames (and its recompile limit) per code
    # object: each compiled module gets a code object of its own, or the ninth
    # module compiled in a process would silently run in eager.
    irc_entry.__code__ = irc_entry.__code__.replace()
    return irc_entry


def _compile(obj: Any, target: str, strict: bool, options: Mapping[str, Any] | None) -> Any:
    from irc.optim import compile_step, is_optimizer_step
    if is_optimizer_step(obj):  # fused multi-tensor kernels (irc.optim)
        return compile_step(obj.__self__, target)
    config = check_target(target, options)
    backend = make_dynamo_backend(target, config, strict)
    from irc.distributed import compile_ddp, is_ddp
    if is_ddp(obj):  # compile the wrapped module (docs/distributed.md)
        return compile_ddp(obj, lambda inner: _compile(inner, target, strict, options))
    if isinstance(obj, torch.nn.Module):
        # A shallow copy shares _parameters/_buffers/_modules with the original
        # (no tensor is copied); only the copy's call is compiled.
        compiled = copy.copy(obj)
        compiled.__dict__["_compiled_call_impl"] = _unwrapping(
            torch.compile(_entry_frame(compiled._call_impl), backend=backend, dynamic=False))
        compiled.__dict__["_irc_target"] = target
        return compiled
    if not callable(obj):
        raise IrcError(f"irc.compile needs an nn.Module or a function, got {type(obj).__name__}")
    compiled_fn = _unwrapping(torch.compile(obj, backend=backend, dynamic=False))
    compiled_fn._irc_target = target  # type: ignore[attr-defined]
    return compiled_fn


def _offloaded(obj: Any, target: str, offload: Any, options: Mapping[str, Any] | None) -> Any:
    """Kernel-by-kernel migration (:mod:`irc.debug.offload`): only the kernels
    ``offload`` selects run on ``target``, the rest in eager PyTorch."""
    from irc.debug.offload import OffloadedModel
    if not callable(obj):
        raise IrcError(f"irc.compile needs an nn.Module or a function, got {type(obj).__name__}")
    return OffloadedModel(obj, target, offload, options)


@overload
def compile(model_or_fn: F, target: str = ..., strict: bool = ...,
            options: Mapping[str, Any] | None = ..., offload: Any = ...) -> F: ...


@overload
def compile(model_or_fn: None = ..., target: str = ..., strict: bool = ...,
            options: Mapping[str, Any] | None = ..., offload: Any = ...) -> Callable[[F], F]: ...


def compile(model_or_fn: Any = None, target: str = "cpu", strict: bool = False,
            options: Mapping[str, Any] | None = None, offload: Any = None) -> Any:
    """Compile an ``nn.Module`` or a function for ``target``.

    The result is called exactly like the original. ``strict=True`` raises
    :class:`irc.UnsupportedOpError` (op + source line) for an op irc cannot
    compile; by default such an op runs in eager PyTorch with one
    :class:`IrcWarning`. ``options``: configuration keys (:mod:`irc.config`:
    pipelines, pass and backend options, cache, logging); bare keys are the
    target backend's options.
    Without ``model_or_fn`` this returns a decorator. ``offload`` (a set of
    kernel names, or a predicate on a kernel's name) migrates only those kernels
    to ``target`` and runs the rest in eager PyTorch (:mod:`irc.debug.offload`).
    """
    if offload is not None:
        check_target(target, options)
        if model_or_fn is None:
            return lambda obj: _offloaded(obj, target, offload, options)
        return _offloaded(model_or_fn, target, offload, options)
    if model_or_fn is None:
        check_target(target, options)
        return lambda obj: _compile(obj, target, strict, options)
    return _compile(model_or_fn, target, strict, options)
