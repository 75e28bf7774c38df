"""``irc export MODULE:ATTR --example-inputs SPEC -o model.ircpkg``: write a package.

``MODULE`` is an importable module name or a ``.py`` file; ``ATTR`` names an
``nn.Module``, a function, or a factory returning ``(model, example_inputs)``
(then ``--example-inputs`` may be left out). ``SPEC`` lists the inputs:
``DTYPE[SHAPE]`` entries separated by ``;`` (``float32[1,3,224,224]``), each
optionally ``NAME=`` first for a keyword argument and ``:HIGH`` last for an
integer tensor's values in ``[0, HIGH)`` (default 2); values are random
(seeded). The shapes fix the package's input shapes.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from irc.errors import IrcError

_ENTRY = re.compile(r"^\s*(?:(\w+)\s*=\s*)?(\w+)\[([\d,\s]*)\]\s*(?::\s*(\d+))?\s*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODULE:ATTR", help="the model: module (or file.py) and "
                        "attribute (an nn.Module, a function, or a factory)")
    parser.add_argument("--example-inputs", metavar="SPEC", default=None,
                        help="inputs as DTYPE[SHAPE];... e.g. 'int64[1,16]:1000' or "
                             "'input_ids=int64[2,16]:1000;attention_mask=int64[2,16]'")
    parser.add_argument("-o", "--output", required=True, metavar="PATH", help="package directory to write")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a compile option, e.g. quantize.weights=int8")
    abi = parser.add_mutually_exclusive_group()
    abi.add_argument("--c-abi", dest="c_abi", action="store_const", const=True, default=None,
                     help="require the C ABI (an error names the op that has no native version)")
    abi.add_argument("--no-c-abi", dest="c_abi", action="store_const", const=False,
                     help="leave the native schedule and C ABI out")


def parse_inputs(spec: str) -> tuple[list[Any], dict[str, Any]]:
    """``SPEC`` (see the module docstring) -> (positional, keyword) tensors."""
    import torch
    gen = torch.Generator().manual_seed(0)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for entry in filter(str.strip, spec.split(";")):
        m = _ENTRY.match(entry)
        if m is None:
            raise IrcError(f"--example-inputs: cannot read {entry.strip()!r}; expected "
                           "[NAME=]DTYPE[D0,D1,...][:HIGH], e.g. float32[1,3,32,32]")
        name, dtype_name, dims, high = m.groups()
        dtype = getattr(torch, dtype_name, None)
        if not isinstance(dtype, torch.dtype):
            raise IrcError(f"--example-inputs: unknown dtype {dtype_name!r}")
        shape = [int(d) for d in dims.split(",") if d.strip()]
        if dtype.is_floating_point:
            t = torch.randn(shape, generator=gen).to(dtype)
        elif dtype == torch.bool:
            t = torch.randint(0, 2, shape, generator=gen).bool()
        else:
            t = torch.randint(0, int(high or 2), shape, generator=gen).to(dtype)
        if name:
            kwargs[name] = t
        elif kwargs:
            raise IrcError("--example-inputs: a positional input after a keyword one")
        else:
            args.append(t)
    return args, kwargs


def _resolve(spec: str) -> Any:
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise IrcError(f"{spec}: expected MODULE:ATTR (e.g. mypkg.models:net or model.py:build)")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise IrcError(f"{module_name}: no such file")
            loaded = importlib.util.spec_from_file_location(path.stem, path)
            assert loaded is not None and loaded.loader is not None
            module = importlib.util.module_from_spec(loaded)
            sys.modules[path.stem] = module
            loaded.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except IrcError:
        raise
    except Exception as err:
        raise IrcError(f"{spec}: importing {module_name} failed: {type(err).__name__}: {err}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise IrcError(f"{spec}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def run(args: argparse.Namespace) -> int:
    import torch

    from irc.exporter import export
    from irc.loader import describe
    obj = _resolve(args.model)
    options: dict[str, Any] = {}
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise IrcError(f"--set {item}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    if args.example_inputs is not None:
        model = obj
        positional, keyword = parse_inputs(args.example_inputs)
        inputs: Any = keyword if keyword and not positional else tuple(positional)
        if keyword and positional:
            raise IrcError("--example-inputs: use all positional or all keyword inputs")
    else:
        if isinstance(obj, torch.nn.Module) or not callable(obj):
            raise IrcError(f"{args.model}: give --example-inputs (or name a factory returning "
                           "(model, example_inputs))")
        try:
            made = obj()
            if not isinstance(made, (tuple, list)) or len(made) != 2:
                raise TypeError(f"it returned {type(made).__name__}, not (model, example_inputs)")
            model, inputs = made
        except Exception as err:
            raise IrcError(f"{args.model}: calling the factory failed: {type(err).__name__}: {err}") \
                from None
    if isinstance(model, torch.nn.Module):
        model.eval()
    path = export(model, inputs, args.output, options=options or None, c_abi=args.c_abi)
    import json
    manifest = json.loads((path / "manifest.json").read_text())
    abi = manifest["c_abi"]
    print(f"wrote {path} ({manifest['kernels']} kernels)\n{describe(manifest)}\n"
          f"C ABI   {'yes (irc_model.h)' if abi['available'] else 'no: ' + abi['reason']}")
    return 0
