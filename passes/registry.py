"""Every pass irc knows, by its CLI name, imported lazily.

A pass is an xDSL ``ModulePass`` (a frozen dataclass: ``name`` is its flag,
fields are its options). The table below is the whole registry.
"""

from __future__ import annotations

import difflib
import importlib

from xdsl.passes import ModulePass

from irc.errors import PassError

# name -> "module:Class"; a test checks that each key equals the pass's `name`.
_BUILTIN: dict[str, str] = {
    "dce": "irc.passes.dce:DeadCodeElimination",
    "cse": "irc.passes.cse:CommonSubexpressionElimination",
    "canonicalize": "irc.passes.canonicalize:Canonicalize",
    "channels-last": "irc.passes.channels_last:ChannelsLast",
    "swap-skinny-matmul": "irc.passes.skinny_matmul:SwapSkinnyMatmul",
    "patch-matmul": "irc.passes.patch_matmul:PatchMatmul",
    "constant-fold": "irc.passes.constant_fold:ConstantFold",
    "conv-epilogue": "irc.passes.conv_epilogue:ConvEpilogue",
    "fold-batch-norm": "irc.passes.fold_batch_norm:FoldBatchNorm",
    "fuse": "irc.passes.fuse:Fuse",
    "lower-to-loops": "irc.backends.llvm.lowering.lower_to_loops:LowerToLoops",
    "matmul-epilogues": "irc.backends.triton.matmul_epilogues:MatmulEpilogues",
    "memory-plan": "irc.passes.memory_plan:MemoryPlanPass",
    "merge-quantized-matmuls": "irc.passes.merge_quantized_matmuls:MergeQuantizedMatmuls",
    "quantize-weights": "irc.passes.quantize_weights:QuantizeWeights",
    "split-full-reductions": "irc.backends.llvm.lowering.split_full_reductions:SplitFullReductions",
}


def pass_names() -> list[str]:
    return sorted(_BUILTIN)


def get_pass(name: str) -> type[ModulePass]:
    """The pass class registered as ``name``; unknown names suggest close ones."""
    if name in _BUILTIN:
        module_name, class_name = _BUILTIN[name].split(":")
        return getattr(importlib.import_module(module_name), class_name)
    close = difflib.get_close_matches(name, pass_names(), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise PassError(f"unknown pass '{name}'{hint} (irc opt --list-passes lists them)")
