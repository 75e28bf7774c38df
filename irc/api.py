"""``irc.compile``: the public entry point.

    fast = irc.compile(model, target="cpu")      # nn.Module or function
    @irc.compile                                  # decorator, with or without arguments
    @irc.compile(target="reference", strict=True)

Compilation goes through ``torch.compile`` (dynamo; ``dynamic=`` as there:
``None`` compiles the first shape static and a changed size once more with that
dimension symbolic, ``True`` symbolic from the start, ``False`` a compile per
shape; ``torch._dynamo.mark_dynamic`` is honoured) with irc's backend, so Python control flow, graph breaks, guards and recompilation
on new shapes/dtypes behave as torch users know. A compiled ``nn.Module`` is the
same kind of module sharing the original's parameters, buffers and submodules
(``parameters()``, ``state_dict()``, ``train()/eval()`` and in-place weight
updates all work); only its call goes through the compiler. Errors irc raises
while compiling reach the caller as the :class:`irc.IrcError` they are, not
wrapped in dynamo's exceptions. The compiled callable carries an
:class:`irc.stats.CompileStats` as ``irc_stats`` (graphs, kernels, library
calls, nodes left in eager); a call that ran nothing compiled (no graph reached
irc, or dynamo stopped at its recompile limit) warns once, or with
``strict=True`` raises :class:`irc.NothingCompiledError`.
"""

from __future__ import annotations

import copy
import functools
import itertools
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

import torch

from irc.driver import check_target
from irc.dynamo_backend import register as _register_dynamo_backend
from irc.errors import IrcError, unwrapping_irc_errors
from irc.frontends.capture import IrcWarning, make_dynamo_backend
from irc.stats import CompileStats

_register_dynamo_backend()  # torch.compile(..., backend="irc") works once irc.compile is used

__all__ = ["compile", "IrcWarning"]

F = TypeVar("F", bound=Callable[..., Any])


def _calling(fn: Callable[..., Any], stats: CompileStats, strict: bool,
             entry: types.CodeType | None) -> Callable[..., Any]:
    """``fn`` (the torch.compile'd callable) re-raising irc errors that dynamo
    wrapped in BackendCompilerFailed, and telling ``stats`` after each call
    whether it ran anything compiled (:meth:`CompileStats.after_call`: one
    warning, or with ``strict`` an error, when it did not). ``entry``: the code
    object dynamo compiles, to read its recompile count from."""
    mha = torch.backends.mha
    unwrapped = unwrapping_irc_errors(fn)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        runs = stats.compiled_runs
        # In eval mode without grad, nn.TransformerEncoderLayer and
        # nn.MultiheadAttention take a "fast path" into one fused native op
        # (aten._transformer_encoder_layer_fwd, _native_multi_head_attention)
        # that irc cannot compile; with it off, dynamo traces their composite
        # forward (same math). The switch is torch's own, set for the call.
        fastpath = mha.get_fastpath_enabled()
        mha.set_fastpath_enabled(False)
        try:
            result = unwrapped(*args, **kwargs)
        finally:
            mha.set_fastpath_enabled(fastpath)
        stats.after_call(runs, strict, entry)
        return result
    return call


def _display_name(obj: Any) -> str:
    """How messages name a compiled model or function."""
    if isinstance(obj, torch.nn.Module):
        return type(obj).__name__
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__


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
    irc_entry.__code__ = _unshared(irc_entry.__code__)
    return irc_entry


_COMPILES = itertools.count()


def _unshared(code: types.CodeType) -> types.CodeType:
    """A copy of ``code`` that dynamo tells apart from every other compile's.

    Dynamo keys its recompile limit by code object, and its memory of which
    sizes changed (``automatic_dynamic_local_pgo``, what makes ``dynamic=None``
    compile a changed size symbolic) by file, first line and *name*: with one
    shared name, a model whose sizes varied made the next model compiled in
    the process start symbolic. A name of its own per ``irc.compile`` keeps
    "the first call compiles static" true for each."""
    return code.replace(co_name=f"{code.co_name}__irc{next(_COMPILES)}")


def _own_code(fn: Any) -> Any:
    """A copy of a Python function (or bound method) with a code object of its own.

    Dynamo keeps compiled frames, and counts its recompile limit, per code
    object: compiling one function (or a closure made by one factory) again
    and again, e.g. per test example, shared eight compiled versions and then
    ran in eager. Each ``irc.compile`` gets its own, as modules do
    (:func:`_entry_frame`).
    """
    if isinstance(fn, types.MethodType):
        return types.MethodType(_own_code(fn.__func__), fn.__self__)
    if not isinstance(fn, types.FunctionType):
        return fn
    copy_fn = types.FunctionType(_unshared(fn.__code__), fn.__globals__, fn.__name__,
                                 fn.__defaults__, fn.__closure__)
    copy_fn.__kwdefaults__ = fn.__kwdefaults__
    functools.update_wrapper(copy_fn, fn)
    del copy_fn.__wrapped__  # dynamo must trace the copy, not unwrap to the original
    return copy_fn


def _compile(obj: Any, target: str, strict: bool, options: Mapping[str, Any] | None,
             dynamic: bool | None = None) -> Any:
    from irc.optim import compile_step, is_optimizer_step
    if is_optimizer_step(obj):  # fused multi-tensor kernels (irc.optim)
        return compile_step(obj.__self__, target)
    config = check_target(target, options)
    from irc.distributed import compile_ddp, is_ddp
    if is_ddp(obj):  # compile the wrapped module (docs/distributed.md)
        return compile_ddp(obj, lambda inner: _compile(inner, target, strict, options, dynamic))
    if not callable(obj):
        raise IrcError(f"irc.compile needs an nn.Module or a function, got {type(obj).__name__}")
    stats = CompileStats(_display_name(obj), target)
    backend = make_dynamo_backend(target, config, strict, stats)
    if isinstance(obj, torch.nn.Module):
        # A shallow copy shares _parameters/_buffers/_modules with the original
        # (no tensor is copied); only the copy's call is compiled.
        compiled = copy.copy(obj)
        entry = _entry_frame(compiled._call_impl)
        compiled.__dict__["_compiled_call_impl"] = _calling(
            torch.compile(entry, backend=backend, dynamic=dynamic), stats, strict, entry.__code__)
        compiled.__dict__["_irc_target"] = target
        compiled.__dict__["irc_stats"] = stats
        return compiled
    fn = _own_code(obj)
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    compiled_fn = _calling(torch.compile(fn, backend=backend, dynamic=dynamic), stats, strict,
                           code if isinstance(code, types.CodeType) else None)
    compiled_fn._irc_target = target  # type: ignore[attr-defined]
    compiled_fn.irc_stats = stats  # type: ignore[attr-defined]
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
            options: Mapping[str, Any] | None = ..., offload: Any = ...,
            dynamic: bool | None = ...) -> F: ...


@overload
def compile(model_or_fn: None = ..., target: str = ..., strict: bool = ...,
            options: Mapping[str, Any] | None = ..., offload: Any = ...,
            dynamic: bool | None = ...) -> Callable[[F], F]: ...


def compile(model_or_fn: Any = None, target: str = "cpu", strict: bool = False,
            options: Mapping[str, Any] | None = None, offload: Any = None,
            dynamic: bool | None = None) -> Any:
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
    ``dynamic`` means what it means for ``torch.compile``: ``None`` (default)
    compiles the first call's shapes static and, when a size changes, once more
    with that dimension symbolic (``tensor<?x...>``; no compile per size after
    that); ``True`` makes every size symbolic from the first call (dynamo still
    specialises sizes 0 and 1); ``False`` compiles every new shape.
    """
    if offload is not None:
        check_target(target, options)
        if model_or_fn is None:
            return lambda obj: _offloaded(obj, target, offload, options)
        return _offloaded(model_or_fn, target, offload, options)
    if model_or_fn is None:
        check_target(target, options)
        return lambda obj: _compile(obj, target, strict, options, dynamic)
    return _compile(model_or_fn, target, strict, options, dynamic)
