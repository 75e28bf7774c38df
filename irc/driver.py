"""From a graph-level :class:`Program` to something that runs on a target.

This is the whole middle of the compiler in one place: pick the backend, run
the backend's configured pipeline down to the level it consumes
(:meth:`irc.config.Config.pipeline_for`), hand it over with the backend's
configured options (:meth:`irc.config.Config.backend_options`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from irc.backends.base import BackendOptions, Executable
from irc.backends.registry import get_backend
from irc.config import Config
from irc.errors import BackendError, ConfigError, IrcError
from irc.frontends.program import Program
from irc.passes.pipeline import parse_pipeline, run_pipeline


def _print_after(p: ModulePass, module: ModuleOp) -> None:
    from irc.ir.text import print_module
    print(f"// -----// IR Dump After {p.name} //----- //\n{print_module(module)}", file=sys.stderr)


def check_target(target: str, options: Mapping[str, Any] | Any | None) -> Any:
    """The compile's :class:`irc.config.Config`; fails now (not at the first
    call) on an unknown target or a bad option."""
    if options is not None and not isinstance(options, (Mapping, Config)):
        raise ConfigError(f"options must be a dict, got {type(options).__name__}")
    backend = get_backend(target)
    config = Config.from_options(options, target=target)
    config.backend_options(backend)  # validates the backend's fields now
    return config


def compile_program(program: Program, target: str = "cpu",
                    options: Mapping[str, Any] | BackendOptions | Config | None = None,
                    pipeline: str | None = None, verify_each: bool = False) -> Executable:
    """Lower ``program.module`` to the target's level and compile it.

    ``options``: a :class:`Config`, a mapping accepted by
    :meth:`Config.from_options` (nested or dotted keys; bare keys are the
    target's backend options), or a ready ``backend.Options`` instance.
    ``pipeline`` replaces the configured pipeline text when given.
    """
    backend = get_backend(target)
    if isinstance(options, BackendOptions):
        config, backend_options = Config.from_options(None, target=target), options
    else:
        config = Config.from_options(options, target=target)
        backend_options = config.backend_options(backend)
    problem = backend.available(backend_options)
    if problem is not None:
        raise BackendError(problem)
    config.apply_logging()
    after = _print_after if config.logging.print_ir_after_all else None
    # Only quantize-weights and merge-quantized-matmuls get the weight store
    # (they replace float weights by quantized ones). constant-fold gets none on purpose: it would fold
    # weight-only subgraphs into new weights computed from today's values, and
    # an in-place weight update would no longer be seen; the backends compute
    # such weight-derived values at run time, once per weight version
    # (tests/test_cpu_backend.py::test_weight_derived_kernels_run_once_per_weight_version).
    from irc.ir.symbols import module_is_symbolic
    if (pipeline is None and module_is_symbolic(program.module)
            and not getattr(backend, "symbolic_shapes", False)):
        return _compile_symbolic(program, target, backend, config, backend_options,
                                 verify_each, after)
    passes = _with_weight_store(parse_pipeline(pipeline or config.pipeline_for(backend)),
                                program.weights, program.derived)
    run_pipeline(program.module, passes, verify_each=verify_each, after_pass=after,
                 reproducer_dir=config.logging.reproducer_dir)
    return _backend_compile(program.module, program.weights, target, backend, backend_options,
                            config)


def _compile_symbolic(program: Program, target: str, backend: Any, config: Config,
                      backend_options: BackendOptions, verify_each: bool, after: Any) -> Executable:
    """Symbolic sizes on a backend that compiles static shapes: the graph
    stage runs once, symbolically; the rest once per binding of the sizes
    (:mod:`irc.symbolic_executable`)."""
    from irc.symbolic_executable import SpecializingExecutable
    graph = _with_weight_store(parse_pipeline(config.pipeline_for(backend, to="graph")),
                               program.weights, program.derived)
    run_pipeline(program.module, graph, verify_each=verify_each, after_pass=after,
                 reproducer_dir=config.logging.reproducer_dir)
    rest = config.pipeline_for(backend, start="graph")
    fallback_reason: str | None = None
    if getattr(backend, "compiles_symbolic", False):
        # one compile for every size; what the lower stages cannot do symbolically
        # raises (SymbolicShapeError naming it) and the module compiles per binding
        graph_module = program.module.clone()
        try:
            passes = _with_weight_store(parse_pipeline(rest), program.weights) if rest else []
            run_pipeline(program.module, passes, verify_each=verify_each, after_pass=after,
                         reproducer_dir=config.logging.reproducer_dir)
            return _backend_compile(program.module, program.weights, target, backend,
                                    backend_options, config)
        except IrcError as err:
            fallback_reason = f"{type(err).__name__}: {err}".split("\n")[0]
            program.module = graph_module
            import warnings
            warnings.warn(f"irc: {target} compiles this program once per binding of its sizes, "
                          f"not once for all: {fallback_reason}", SymbolicFallbackWarning,
                          stacklevel=2)

    def compile_static(module: ModuleOp) -> Executable:
        passes = _with_weight_store(parse_pipeline(rest), program.weights,
                                    program.derived) if rest else []
        run_pipeline(module, passes, verify_each=verify_each, after_pass=after,
                     reproducer_dir=config.logging.reproducer_dir)
        return _backend_compile(module, program.weights, target, backend, backend_options, config)

    executable = SpecializingExecutable(program.module, compile_static)
    executable.fallback_reason = fallback_reason
    return executable


class SymbolicFallbackWarning(UserWarning):
    """A backend that compiles symbolic sizes once could not for this program:
    it compiles once per binding of the sizes instead (the reason is in the
    message and in ``irc_stats.symbolic_fallbacks``)."""


def _backend_compile(module: ModuleOp, weights: Mapping[str, Any], target: str, backend: Any,
                     backend_options: BackendOptions, config: Config) -> Executable:
    aliased = _outputs_aliasing_inputs(module)
    try:
        executable = backend.compile(module, weights, backend_options)
    except IrcError:
        raise
    except Exception as err:  # a crash in the backend is an irc bug, with a reproducer
        from irc.reproducer import backend_crash
        raise backend_crash(target, err, module, config.logging.reproducer_dir) from err
    return _CopyAliasedOutputs(executable, aliased) if aliased else executable


def _with_weight_store(passes: list[ModulePass], weights: dict, derived: Any = None
                       ) -> list[ModulePass]:
    """``quantize-weights`` and ``merge-quantized-matmuls`` get the program's
    weight store (they replace float weights by quantized ones, and those by
    stacked ones: a compile-time snapshot either way) and the memo of derived
    weights shared by the graphs of one compile (``derived``); other passes
    do not, so weights stay live tensors that in-place updates reach."""
    import dataclasses

    from irc.passes.merge_quantized_matmuls import MergeQuantizedMatmuls
    from irc.passes.quantize_weights import QuantizeWeights
    return [dataclasses.replace(p, weights=weights, derived=derived)
            if isinstance(p, (QuantizeWeights, MergeQuantizedMatmuls)) and p.weights is None
            else p for p in passes]


def _outputs_aliasing_inputs(module: ModuleOp) -> list[int]:
    """Positions of @main's results that are its arguments or weights (or an
    argument updated in place by ``graph.cache_update``).

    Value semantics let ``clone`` (or ``x * 1``) fold away, so @main may
    return its input; a backend would then hand the caller the input tensor
    itself, and mutating the result would mutate the input. Those results
    are copied, for every backend alike.
    """
    from xdsl.dialects import func
    from xdsl.ir import BlockArgument

    from irc.ir.graph import CacheUpdateOp, WeightOp
    from irc.ir.kernel import find_main
    ret = find_main(module).body.block.last_op
    if not isinstance(ret, func.ReturnOp):
        return []
    return [i for i, v in enumerate(ret.operands)
            if isinstance(v, BlockArgument) or isinstance(v.owner, (WeightOp, CacheUpdateOp))]


class _CopyAliasedOutputs:
    """An executable whose results at ``positions`` are fresh copies; every
    other attribute is the wrapped backend executable's."""

    def __init__(self, inner: Executable, positions: list[int]) -> None:
        self._inner = inner
        self._positions = positions

    def __call__(self, *inputs: Any) -> list[Any]:
        outputs = list(self._inner(*inputs))
        for i in self._positions:
            outputs[i] = outputs[i].clone()
        return outputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
