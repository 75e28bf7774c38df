"""From a graph-level :class:`Program` to something that runs on a target.

This is the whole middle of the compiler in one place: pick the backend, run
the configured pipeline down to the level that backend consumes
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
from irc.errors import BackendError
from irc.frontends.program import Program
from irc.passes.pipeline import run_pipeline


def _print_after(p: ModulePass, module: ModuleOp) -> None:
    from irc.ir.text import print_module
    print(f"// -----// IR Dump After {p.name} //----- //\n{print_module(module)}", file=sys.stderr)


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
    problem = backend.available()
    if problem is not None:
        raise BackendError(problem)
    if isinstance(options, BackendOptions):
        config, backend_options = Config.from_options(None, target=target), options
    else:
        config = Config.from_options(options, target=target)
        backend_options = config.backend_options(backend)
    config.apply_logging()
    after = _print_after if config.logging.print_ir_after_all else None
    run_pipeline(program.module, pipeline or config.pipeline_for(backend.level),
                 verify_each=verify_each, after_pass=after)
    return backend.compile(program.module, program.weights, backend_options)
