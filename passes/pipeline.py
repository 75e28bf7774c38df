"""Textual pass pipelines, and the default stages every backend starts from.

A compile runs one pipeline: the stages from the graph level down to the
level its backend consumes (``graph``, then ``kernel``, then ``loops``). Each
backend owns its stages (:attr:`irc.backends.base.Backend.pipeline`, by default
:data:`DEFAULT_STAGES`; the CPU backend adds its BLAS heuristic), and the
configuration keys ``pipeline.graph|kernel|loops`` replace a stage for every
backend (:meth:`irc.config.Config.pipeline_for`). ``irc config pipeline
--target T`` prints the exact text, so ``irc opt --pass-pipeline "$(irc config
pipeline --target cpu)"`` reproduces what ``irc.compile`` runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import parse_pipeline as _parse_spec_list
from xdsl.utils.exceptions import ArgSpecParseError

from irc.errors import IrcError, PassError
from irc.ir.text import SourceMap, make_context, verify_module
from irc.passes.levels import check_levels
from irc.passes.registry import get_pass

# graph -> graph: caching of repeated computation and dead-node elimination;
# eval batch norm folded into the convolution before it (computed now when the
# weights are known, else once per weight version at run time); canonicalize
# again after constant folding (e.g. a folded all-zero attention mask is dropped).
GRAPH_PIPELINE = "dce,cse,canonicalize,fold-batch-norm,constant-fold,canonicalize,cse,dce"
# graph -> kernel: layouts for the library calls first -- convolutions and
# pooling on channels-last data (the layout oneDNN and cuDNN are fast on); the
# kernels between them fold the permutes in. Then fusion decides the kernels
# and outlines them; the memory plan annotates @main with its peak (irc
# translate --to kernel shows it). Target-specific layout heuristics belong in
# a backend's own kernel stage (the CPU backend's swap-skinny-matmul).
KERNEL_PIPELINE = "channels-last,fuse,memory-plan"
# kernel -> loops: large full reductions split for threads, then bufferised
# scf/memref/arith loops (the CPU backend's input).
LOOPS_PIPELINE = "split-full-reductions,lower-to-loops"

LEVELS: tuple[str, ...] = ("graph", "kernel", "loops")
DEFAULT_STAGES: dict[str, str] = {"graph": GRAPH_PIPELINE, "kernel": KERNEL_PIPELINE,
                                  "loops": LOOPS_PIPELINE}
"""The stages of a backend that declares none of its own."""

LEVEL_PIPELINES: dict[str, str] = {
    "graph": GRAPH_PIPELINE,
    "kernel": f"{GRAPH_PIPELINE},{KERNEL_PIPELINE}",
    "loops": f"{GRAPH_PIPELINE},{KERNEL_PIPELINE},{LOOPS_PIPELINE}",
}
"""The default stages chained down to each level."""

AfterPass = Callable[[ModulePass, ModuleOp], None]


def _with_weights(p: ModulePass, weights: dict) -> ModulePass:
    fields = {f.name for f in dataclasses.fields(p)} if dataclasses.is_dataclass(p) else set()
    if "weights" in fields and getattr(p, "weights") is None:
        return dataclasses.replace(p, weights=weights)
    return p


def parse_pipeline(text: str) -> list[ModulePass]:
    """``'dce,cse,canonicalize{max-iterations=4}'`` -> pass instances."""
    try:
        specs = list(_parse_spec_list(text))
    except ArgSpecParseError as err:
        raise PassError(f"malformed pipeline '{text}': {str(err).strip().splitlines()[-1]}") from None
    passes: list[ModulePass] = []
    for spec in specs:
        cls = get_pass(spec.name)
        try:
            passes.append(cls.from_pass_spec(spec))
        except Exception as err:  # xDSL raises plain Exceptions for bad options
            raise PassError(f"bad options for pass '{spec.name}': {err}") from None
    return passes


def run_pipeline(module: ModuleOp, pipeline: str | list[ModulePass], verify_each: bool = True,
                 after_pass: AfterPass | None = None, weights: dict | None = None,
                 source_map: SourceMap | None = None,
                 reproducer_dir: str | None = None) -> ModuleOp:
    """Apply the passes in order, verifying after each (if asked).

    ``weights``: the program's weight store. Passes with a ``weights`` option
    left unset (``constant-fold``) get it, so they can read weights and add
    folded ones (e.g. a transposed weight) to it. ``source_map`` lets verifier
    failures point into the parsed text. A pass run on IR of a level it does
    not accept is a PassError naming the pass to run first
    (:mod:`irc.passes.levels`). A pass that crashes (an irc bug, not a user
    mistake) is an :class:`irc.InternalCompilerError` naming the pass, with
    the IR it received written to ``reproducer_dir`` (:mod:`irc.reproducer`).
    """
    passes = parse_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
    if weights is not None:
        passes = [_with_weights(p, weights) for p in passes]
    check_levels(passes, module)
    original = module.clone()  # to rebuild the IR a crashing pass received
    ctx = make_context()
    for i, p in enumerate(passes):
        try:
            p.apply(ctx, module)
        except IrcError:
            raise
        except Exception as err:
            from irc.reproducer import pass_crash
            received = _replay(original, passes[:i], ctx)
            raise pass_crash(p, err, received, reproducer_dir) from err
        if verify_each:
            verify_module(module, source_map)
        if after_pass is not None:
            after_pass(p, module)
    return module


def _replay(module: ModuleOp, passes: list[ModulePass], ctx: object) -> ModuleOp | None:
    """``module`` after ``passes`` (deterministic, as passes are), or None
    when the replay itself fails."""
    try:
        for p in passes:
            p.apply(ctx, module)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - the original crash is what gets reported
        return None
    return module
