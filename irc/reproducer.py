"""Reproducers for internal compiler errors: the IR a crashing stage received.

:func:`pass_crash` turns an exception escaping a pass into an
:class:`irc.InternalCompilerError`: the IR the pass received is written
(atomically: a temp file in the same folder, then a rename) to a ``.mlir``
file named after the pass and the text's hash, and the error carries the one
``irc opt`` command line that runs that pass, with its options, on that file.
The folder is ``logging.reproducer_dir`` when configured, else
``$TMPDIR/irc-reproducers``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shlex
import tempfile
import traceback
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from irc.errors import InternalCompilerError


def reproducer_dir(directory: str | os.PathLike | None = None) -> Path:
    """Where reproducers go: ``directory``, else ``$TMPDIR/irc-reproducers``."""
    return Path(directory) if directory is not None else Path(tempfile.gettempdir()) / "irc-reproducers"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename (no torn file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def pass_spec(p: ModulePass) -> str:
    """The pass as ``irc opt`` takes it: ``name{option=value ...}``. Options
    that are not text (the weight store of constant-fold) are left out."""
    if dataclasses.is_dataclass(p):
        objects = {f.name: None for f in dataclasses.fields(p)
                   if f.name == "weights" and getattr(p, f.name) is not None}
        p = dataclasses.replace(p, **objects) if objects else p
    try:
        return str(p.pipeline_pass_spec())
    except Exception:  # noqa: BLE001 - an option xDSL cannot print: the bare name still reproduces most
        return p.name


def _error_text(err: BaseException) -> str:
    where = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    at = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(err).__name__}: {err}{at}"


def pass_crash(p: ModulePass, err: BaseException, received: ModuleOp | None,
               directory: str | os.PathLike | None = None) -> InternalCompilerError:
    """The InternalCompilerError for pass ``p`` crashing with ``err`` on ``received``."""
    spec = pass_spec(p)
    if received is None:
        return InternalCompilerError(f"pass '{p.name}'", _error_text(err), pass_name=p.name,
                                     note="the IR it received could not be reconstructed")
    from irc.ir.text import print_module
    try:
        text = print_module(received)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        path = reproducer_dir(directory) / f"{p.name}-{digest}.mlir"
        write_atomic(path, text)
    except Exception as write_err:  # noqa: BLE001 - the report must not hide the crash
        return InternalCompilerError(f"pass '{p.name}'", _error_text(err), pass_name=p.name,
                                     note=f"could not write the IR it received: {write_err}")
    command = f"irc opt {shlex.quote(str(path))} --pass {shlex.quote(spec)}"
    return InternalCompilerError(f"pass '{p.name}'", _error_text(err), str(path), command, p.name)


# The `irc translate` stage that runs a backend's code generator, per backend.
TRANSLATE_STAGE = {"cpu": "llvm", "cuda": "triton"}


def backend_crash(backend: str, err: BaseException, received: ModuleOp,
                  directory: str | os.PathLike | None = None) -> InternalCompilerError:
    """The InternalCompilerError for ``backend`` crashing while compiling ``received``."""
    from irc.ir.text import print_module
    try:
        text = print_module(received)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        path = reproducer_dir(directory) / f"backend-{backend}-{digest}.mlir"
        write_atomic(path, text)
    except Exception as write_err:  # noqa: BLE001 - the report must not hide the crash
        return InternalCompilerError(f"backend '{backend}'", _error_text(err),
                                     note=f"could not write the IR it received: {write_err}")
    stage = TRANSLATE_STAGE.get(backend)
    command = f"irc translate {shlex.quote(str(path))} --to {stage}" if stage else None
    note = None if stage else f"compile {path} for target '{backend}' to reproduce"
    return InternalCompilerError(f"backend '{backend}'", _error_text(err), str(path), command,
                                 note=note)
