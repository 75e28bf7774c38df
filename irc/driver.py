"""From a graph-level :class:`Program` to something that runs on a target.

This is the whole middle of the compiler in one place: pick the backend, run
the default pipeline down to the level that backend consumes, hand it over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from irc.backends.base import BackendOptions, Executable
from irc.backends.registry import get_backend
from irc.frontends.program import Program
from irc.passes.pipeline import LEVEL_PIPELINES, run_pipeline


def compile_program(program: Program, target: str = "cpu",
                    options: Mapping[str, Any] | BackendOptions | None = None,
                    pipeline: str | None = None, verify_each: bool = False) -> Executable:
    """Lower ``program.module`` to the target's level and compile it."""
    backend = get_backend(target)
    problem = backend.available()
    if problem is not None:
        from irc.errors import BackendError
        raise BackendError(problem)
    if not isinstance(options, BackendOptions):
        options = backend.Options(**dict(options or {}))
    run_pipeline(program.module, pipeline or LEVEL_PIPELINES[backend.level.value],
                 verify_each=verify_each)
    return backend.compile(program.module, program.weights, options)
