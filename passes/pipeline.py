"""Textual pass pipelines, and the default pipelines of ``irc.compile``.

The default pipelines are listed here and only here, so that
``irc opt --pass-pipeline "$(irc config show pipeline)"`` reproduces exactly what
``irc.compile`` runs.
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
from irc.passes.registry import get_pass

# graph -> graph: caching of repeated computation and dead-node elimination;
# eval batch norm folded into the convolution before it (computed now when the
# weights are known, else once per weight version at run time).
GRAPH_PIPELINE = "dce,cse,canonicalize,fold-batch-norm,constant-fold,cse,dce"
# graph -> kernel: layouts for the library calls first -- convolutions and
# pooling on channels-last data (the layout oneDNN and cuDNN are fast on),
# small-batch linear layers multiplied transposed (faster in BLAS); the kernels
# between them fold the permutes in. Then fusion decides the kernels and
# outlines them; the memory plan annotates @main with its peak (irc translate
# --to kernel shows it).
KERNEL_PIPELINE = "channels-last,swap-skinny-matmul,fuse,memory-plan"
# kernel -> loops: bufferised scf/memref/arith loops (CPU backend input).
LOOPS_PIPELINE = "lower-to-loops"

LEVEL_PIPELINES: dict[str, str] = {
    "graph": GRAPH_PIPELINE,
    "kernel": f"{GRAPH_PIPELINE},{KERNEL_PIPELINE}",
    "loops": f"{GRAPH_PIPELINE},{KERNEL_PIPELINE},{LOOPS_PIPELINE}",
}

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
                 source_map: SourceMap | None = None) -> ModuleOp:
    """Apply the passes in order, verifying after each (if asked).

    ``weights``: the program's weight store. Passes with a ``weights`` option
    left unset (``constant-fold``) get it, so they can read weights and add
    folded ones (e.g. a transposed weight) to it. ``source_map`` lets verifier
    failures point into the parsed text. A pass that crashes (an irc bug, not a
    user mistake) becomes a PassError naming the pass.
    """
    passes = parse_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
    if weights is not None:
        passes = [_with_weights(p, weights) for p in passes]
    ctx = make_context()
    for p in passes:
        try:
            p.apply(ctx, module)
        except IrcError:
            raise
        except Exception as err:
            raise PassError(f"error: internal error in pass '{p.name}': "
                            f"{type(err).__name__}: {err}") from err
        if verify_each:
            verify_module(module, source_map)
        if after_pass is not None:
            after_pass(p, module)
    return module
