"""``irc.load(path)``: run an exported package without the compiler.

    model = irc.load("model.ircpkg")
    logits = model(input_ids=ids, attention_mask=mask)

Imports torch, ctypes, json and the standard library only (never xdsl,
llvmlite, triton or torch._dynamo; ``tests/test_export.py`` checks it in a
fresh process) and needs no model source. Before any native code is loaded,
:func:`irc.package_format.check_package` checks the package (ownership,
format version, every file's size and sha256, the CPU's features): each
problem is an :class:`irc.PackageError` naming the file and what to do.

The weights file is memory-mapped (``torch.UntypedStorage.from_file``,
private mapping): loading reads only the manifest, the schedule and the
checksummed bytes, and no weight is copied. The host schedule runs through
:class:`irc.loader_runtime.ScheduleProgram`.
"""

from __future__ import annotations

import ctypes
import inspect
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from irc.errors import InputMismatchError, PackageError
from irc.package_format import LIBRARY, SCHEDULE, WEIGHTS, check_package

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def map_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file as views of one private memory map."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PackageError(f"{path}: not a safetensors file ({err}); export the model again") from None
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=size)
    base = torch.empty(0, dtype=torch.uint8).set_(storage, 0, (size,))  # type: ignore[call-overload]
    tensors: dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise PackageError(f"{path}: tensor {name} has dtype {info['dtype']}, which irc "
                               f"packages do not use")
        start, end = info["data_offsets"]
        raw = base[8 + n + start:8 + n + end]
        tensors[name] = raw.view(dtype).view(info["shape"]) if end > start else \
            torch.empty(info["shape"], dtype=dtype)
    return tensors


class LoadedModel:
    """An exported model: call it like the model (positional or keyword tensors).

    Returns one tensor when the model has one output, else a tuple in the
    order of ``output_names``. ``manifest`` is the package's manifest."""

    def __init__(self, root: Path, manifest: dict, program: Any) -> None:
        self.path = root
        self.manifest = manifest
        self.program = program
        self.input_names: list[str] = [i["name"] for i in manifest["inputs"]]
        self.output_names: list[str] = [o["name"] for o in manifest["outputs"]]
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
             for n in self.input_names])

    def __repr__(self) -> str:
        return (f"<irc.LoadedModel {self.manifest.get('model', '?')} from {self.path}: "
                f"({', '.join(self.input_names)}) -> {len(self.output_names)} outputs>")

    def __call__(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> Any:
        names = self.input_names
        if len(args) > len(names):
            raise InputMismatchError(f"{self.manifest.get('model', 'model')} takes "
                                     f"{len(names)} inputs ({', '.join(names)}), got {len(args)}")
        inputs = list(args)
        if kwargs:
            unknown = sorted(set(kwargs) - set(names))
            if unknown:
                raise InputMismatchError(f"unexpected input(s) {', '.join(unknown)}; the "
                                         f"package takes {', '.join(names)}")
            for name in names[len(args):]:
                if name not in kwargs:
                    raise InputMismatchError(f"missing input {name}")
                inputs.append(kwargs[name])
            dup = [n for n in names[:len(args)] if n in kwargs]
            if dup:
                raise InputMismatchError(f"input {dup[0]} given twice")
        elif len(args) != len(names):
            raise InputMismatchError(f"expected {len(names)} inputs ({', '.join(names)}), "
                                     f"got {len(args)}")
        outputs = self.program(*inputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def load(path: str | Path, threads: int = 0) -> LoadedModel:
    """Load the package at ``path`` (see the module docstring). ``threads``: most
    threads a parallel kernel uses (0: torch.get_num_threads())."""
    from irc.loader_runtime import ScheduleProgram
    root = Path(path)
    manifest = check_package(root)
    if manifest.get("target") != "cpu":
        raise PackageError(f"{root}: a package for target {manifest.get('target')!r}; "
                           f"irc.load runs cpu packages")
    try:
        schedule = json.loads((root / SCHEDULE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PackageError(f"{root / SCHEDULE}: unreadable ({err}); export the model again") from None
    tensors = map_safetensors(root / WEIGHTS)
    try:
        lib = ctypes.CDLL(str((root / LIBRARY).resolve()))
    except OSError as err:
        raise PackageError(f"{root / LIBRARY}: cannot be loaded ({err}); export the model "
                           f"again on this machine") from None
    program = ScheduleProgram(schedule, lib, tensors, threads)
    return LoadedModel(root, manifest, program)


def describe(manifest: Mapping) -> str:
    """A few lines about a package (``irc export`` prints them)."""
    ins = ", ".join(f"{i['name']}: {i['dtype']}{i['shape']}" for i in manifest["inputs"])
    outs = ", ".join(f"{o['name']}: {o['dtype']}{o['shape']}" for o in manifest["outputs"])
    return f"inputs  {ins}\noutputs {outs}"
