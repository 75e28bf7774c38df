"""``irc translate``: print one stage of a model or a .mlir file.

Input is a ``.mlir`` file (``-`` for stdin), or ``path/to/file.py:NAME`` where
NAME is a callable returning ``(model, example_inputs)`` or a key of that
file's ``MODELS`` dict of such callables. ``--to`` picks the stage:

* ``graph``: after the graph stage (dce, cse, canonicalize, constant-fold);
* ``kernel``: + the kernel stage (layouts, ``fuse``, ``memory-plan``);
* ``loops``: + the loops stage (``split-full-reductions``, ``lower-to-loops``);
* ``llvm``: LLVM IR of the loops module's kernels (the CPU backend's translator);
* ``triton``: Triton source generated from the kernel module; ``--matmul``
  picks how matmuls appear (the backend's ``matmul`` option, by default the
  configured one: ``auto`` shows both schedules and the per-shape switch,
  ``triton`` the template with fused epilogues, ``cublas`` ``torch.matmul``).

The passes are the ones ``irc.compile`` runs for the backend of the stage
(``cuda`` for ``triton``, ``cpu`` for the others), from the same
configuration (``--config``, ``--set``; :meth:`irc.config.Config.pipeline_for`),
stopped at the stage. A .mlir input already at the kernel or loops level skips
the stages it has been through, so ``irc opt --pass-pipeline "$(irc config
pipeline --target cpu)" | irc translate - --to llvm`` prints what a compile
JIT-compiles.

Guarantees: malformed or invalid .mlir is reported as ``file:line:col: error``
with the source line and a caret; a bad ``file.py:NAME``, a stage that is not
available in this installation, or a failure while capturing or lowering is a
one-paragraph message; all of these exit with status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch
from xdsl.dialects.builtin import ModuleOp

from irc import cli_models
from irc.errors import IrcError
from irc.ir.text import SourceMap, parse_module, print_module, verify_module

STAGES = ("graph", "kernel", "loops", "llvm", "triton")
STAGE_LEVELS = ("graph", "kernel", "loops")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a .mlir file (- for stdin), or path/to/file.py:NAME naming "
                                      "a factory returning (model, example_inputs)")
    parser.add_argument("--to", "--target", dest="to", choices=STAGES, default="kernel",
                        help="the stage to print (default: kernel)")
    parser.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    parser.add_argument("--locations", action=argparse.BooleanOptionalAction, default=False,
                        help="print source locations in IR output (default: off)")
    parser.add_argument("--matmul", choices=("auto", "cublas", "triton"), default=None,
                        help="--to triton: matmuls as torch.matmul (cublas), as the Triton "
                             "template with fused epilogue (triton), or both with the "
                             "per-shape choice made at run time (auto); default: the "
                             "configured backend.cuda.matmul")
    parser.add_argument("--config", metavar="YAML", help="configuration file (as irc.compile's)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override one configuration value (repeatable)")


# ----------------------------------------------------------------------------
# inputs


is_model_spec = cli_models.is_model_spec


def load_model(spec: str) -> tuple[Any, tuple[torch.Tensor, ...]]:
    """Run the factory named by ``file.py:NAME`` (:mod:`irc.cli_models`);
    returns (model, positional inputs)."""
    model, inputs, _ = cli_models.make_model(spec)
    if isinstance(inputs, dict):
        raise IrcError(f"{spec}: error: irc translate needs positional example inputs (a tuple), "
                       f"not keyword arguments")
    return model, inputs


def _stage_attr(module_name: str, attr: str, what: str) -> Any:
    """``module_name.attr``, or an IrcError saying the stage is unavailable."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise IrcError(f"error: {what} is not available in this installation "
                           f"({module_name} is missing)") from None
        raise IrcError(f"error: {what} cannot be loaded: {err}") from None
    except Exception as err:
        raise IrcError(f"error: {what} cannot be loaded: {type(err).__name__}: {err}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise IrcError(f"error: {what} is not available ({module_name} has no {attr})")
    return fn


def read_input(spec: str) -> tuple[ModuleOp, SourceMap | None]:
    """The module of a .mlir file, or the graph-level module of a model factory."""
    if is_model_spec(spec):
        model, inputs = load_model(spec)
        from irc.frontends.program import Program
        if isinstance(model, Program):
            return model.module, None
        export_program = _stage_attr("irc.frontends.capture", "export_program",
                                     "the torch frontend")
        try:
            program = export_program(model, inputs)
        except IrcError:
            raise
        except Exception as err:
            raise IrcError(f"{spec}: error: capturing the model failed: "
                           f"{type(err).__name__}: {err}") from None
        return program.module, None
    filename = "<stdin>" if spec == "-" else spec
    try:
        text = sys.stdin.read() if spec == "-" else Path(spec).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise IrcError(f"{filename}: error: cannot read: {err}") from None
    module, source_map = parse_module(text, filename)
    verify_module(module, source_map)
    return module, source_map


# ----------------------------------------------------------------------------
# stages


def stage_backend(stage: str) -> str:
    """The backend whose pipeline leads to ``stage``."""
    return "cuda" if stage == "triton" else "cpu"


def input_level(module: ModuleOp) -> str | None:
    """The last stage ``module`` has been through (None: a fresh graph module)."""
    from irc.ir.kernel import kernel_functions
    kernels = kernel_functions(module)
    if not kernels:
        return None
    from irc.backends.llvm.lowering.lower_to_loops import is_lowered
    return "loops" if any(is_lowered(k) for k in kernels) else "kernel"


def stage_pipeline(stage: str, config: Any = None, start: str | None = None) -> str:
    """The pass pipeline that brings a module to ``stage``: the pipeline
    ``irc.compile`` runs for the stage's backend under ``config`` (defaults
    when None), cut at the stage, without the stages before ``start``."""
    from irc.config import Config
    config = config if config is not None else Config.from_options(None)
    level = {"triton": "kernel", "llvm": "loops"}.get(stage, stage)
    return config.pipeline_for(stage_backend(stage), to=level, start=start)


def run_stage_passes(module: ModuleOp, pipeline: str, source_map: SourceMap | None) -> None:
    from irc.passes.pipeline import run_pipeline
    if not pipeline.strip():
        return
    try:
        run_pipeline(module, pipeline, verify_each=True, source_map=source_map)
    except ImportError as err:
        raise IrcError(f"error: a pass of '{pipeline}' is not available in this installation: "
                       f"{err}") from None


def translate(spec: str, stage: str, locations: bool = False, matmul: str | None = None,
              config: Any = None) -> str:
    """The text of ``stage`` for the input named by ``spec``, under ``config``
    (an :class:`irc.config.Config`; defaults when None)."""
    if stage not in STAGES:
        raise IrcError(f"error: unknown stage '{stage}' (choose from {', '.join(STAGES)})")
    from irc.config import Config
    config = config if config is not None else Config.from_options(None)
    module, source_map = read_input(spec)
    start = input_level(module)
    level = {"triton": "kernel", "llvm": "loops"}.get(stage, stage)
    if start is not None and STAGE_LEVELS.index(start) > STAGE_LEVELS.index(level):
        raise IrcError(f"error: the input is already at the {start} level, past '{stage}'")
    # no weights, as in irc.compile (irc/driver.py says why)
    run_stage_passes(module, stage_pipeline(stage, config, start), source_map)
    if matmul is None:
        matmul = config.backend_options("cuda").matmul if stage == "triton" else "auto"
    if stage == "llvm":
        # LLVM gets the lowered kernels only, each translated alone as the CPU
        # backend compiles them; @main stays a host schedule over tensors.
        kernel_module = _stage_attr("irc.backends.llvm.kernel_texts", "kernel_module",
                                    "the CPU backend")
        kernel_texts = _stage_attr("irc.backends.llvm.kernel_texts", "kernel_texts",
                                   "the CPU backend")
        readable = _stage_attr("irc.backends.llvm.backend", "readable_llvm_ir", "the CPU backend")
        return _emit(lambda m: readable(kernel_texts(kernel_module(m))), module, "LLVM IR")
    if stage == "triton":
        generate_source = _stage_attr("irc.backends.triton.codegen", "generate_source",
                                      "the Triton code generator")
        return _emit(lambda m: generate_source(m, matmul=matmul), module, "Triton source")
    return print_module(module, locations=locations)


def _emit(fn: Any, module: ModuleOp, what: str) -> str:
    try:
        text = fn(module)
    except IrcError:
        raise
    except Exception as err:
        raise IrcError(f"error: generating {what} failed: {type(err).__name__}: {err}") from None
    return text if text.endswith("\n") else text + "\n"


def run(args: argparse.Namespace) -> int:
    from irc.config import Config
    config = Config.from_options(None, yaml_path=getattr(args, "config", None),
                                 sets=getattr(args, "sets", []))
    text = translate(args.input, args.to, args.locations, getattr(args, "matmul", None), config)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as err:
        raise IrcError(f"{args.output}: error: cannot write: {err}") from None
    return 0
