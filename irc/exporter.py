"""``irc.export(model, example_inputs, path, target="cpu")``: write a package.

The model is captured exactly as ``irc.compile`` captures it (dynamo, then
AOTAutograd with irc's decompositions, then the FX importer), with every
parameter and buffer imported as a ``graph.weight`` (as when quantizing), and
compiled by the same driver and pipeline (``options`` as for
``irc.compile``, e.g. ``{"quantize.weights": "int8"}``). Export needs the
whole model as one graph, every op compiled (``strict``): a graph break or an
op irc cannot compile is an error naming it and its source line. Only tensor
arguments become inputs of the package; other arguments are specialised, as
dynamo does. The outputs are the tensors of the model's result in order
(:func:`irc.debug.capture.flat_tensors`).

The package (see :mod:`irc.package_format`) is written atomically: a temp
directory, then one rename.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from irc.errors import IrcError, UnsupportedOpError


@dataclass
class _Captured:
    program: Any  # Program, lowered in place by the compile
    executable: Any
    input_names: list[str]
    layout: list[Any]
    positions: list[int]
    outputs: list[Any]  # the tensors the capture run's graph returned


def _user_inputs(model: Callable[..., Any], args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
    fn = model.forward if isinstance(model, torch.nn.Module) else model
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError) as err:
        raise IrcError(f"irc.export: the example inputs do not fit the model's signature: {err}") \
            from None
    named: list[tuple[str, Any]] = []
    for name, value in bound.arguments.items():
        kind = inspect.signature(fn).parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            named += [(f"{name}_{i}", v) for i, v in enumerate(value)]
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named += list(value.items())
        else:
            named.append((name, value))
    for name, value in named:
        if isinstance(value, (list, tuple, dict)) and any(isinstance(v, torch.Tensor) for v in
                                                          (value.values() if isinstance(value, dict)
                                                           else value)):
            raise IrcError(f"irc.export: input {name} is a {type(value).__name__} of tensors; "
                           "a package takes tensors as its inputs (pass them one by one)")
    return [(n, v) for n, v in named if isinstance(v, torch.Tensor)]


def _weight_names(model: Any) -> dict[int, str]:
    if not isinstance(model, torch.nn.Module):
        return {}
    names: dict[int, str] = {}
    for name, t in list(model.named_parameters(remove_duplicate=False)) + \
            list(model.named_buffers(remove_duplicate=False)):
        names.setdefault(id(t), name)
    return names


def _capture(model: Callable[..., Any], args: tuple, kwargs: dict, target: str,
             options: Mapping[str, Any] | None) -> tuple[_Captured, Any, list[tuple[str, Any]]]:
    from functorch.compile import make_boxed_func  # pyright: ignore[reportPrivateImportUsage]
    from torch._dynamo.backends.common import aot_autograd

    from irc.debug.capture import _entry
    from irc.driver import compile_program
    from irc.frontends.capture import _import
    from irc.frontends.decompositions import decomposition_table
    from irc.frontends.fx_importer import static_problems
    from irc.frontends.unsupported import NodeUnsupported, op_name
    from irc.frontends.source_locations import describe
    user = _user_inputs(model, args, kwargs)
    by_id = {id(t): name for name, t in user}
    weight_names = _weight_names(model)
    graphs: list[_Captured] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        names = [n.name for n in gm.graph.nodes if n.op == "placeholder"]

        def forward(aot_gm: torch.fx.GraphModule, fw_inputs: list[Any]) -> Any:
            from torch._subclasses.fake_tensor import unset_fake_temporarily
            placeholders = [n for n in aot_gm.graph.nodes if n.op == "placeholder"]
            if len(placeholders) != len(example_inputs):
                raise IrcError("irc.export: the captured graph has inputs dynamo did not "
                               "hand over (a training graph?); export under torch.no_grad()")
            weights: dict[str, tuple[str, torch.Tensor]] = {}
            input_names: list[str] = []
            with unset_fake_temporarily():
                for node, t, dyn_name in zip(placeholders, example_inputs, names):
                    if not isinstance(t, torch.Tensor):
                        raise IrcError(f"irc.export: graph input {dyn_name} is a "
                                       f"{type(t).__name__}, not a tensor")
                    if id(t) in by_id:
                        input_names.append(by_id[id(t)])
                    else:
                        name = weight_names.get(id(t)) or \
                            dyn_name.removeprefix("L_self_").removeprefix("L_")
                        weights[node.name] = (name, t.detach())
                problems = static_problems(aot_gm)
                nodes = {n.name: n for n in aot_gm.graph.nodes}
                if problems:
                    name, reason = next(iter(problems.items()))
                    raise UnsupportedOpError(op_name(nodes[name]), describe(nodes[name]), reason)
                try:
                    program, layout, positions = _import(aot_gm, target, weights or None)
                except NodeUnsupported as err:
                    raise UnsupportedOpError(op_name(err.node), describe(err.node),
                                             err.reason) from None
                executable = compile_program(program, target, options)
            captured = _Captured(program, executable, input_names, list(layout),
                                 list(positions), [])
            graphs.append(captured)

            def run(*a: Any) -> list[Any]:
                results = executable(*[a[i].contiguous() for i in positions])
                outs = [results[item] if isinstance(item, int) else item[1] for item in layout]
                if not captured.outputs:
                    captured.outputs = list(outs)
                return outs
            return make_boxed_func(run)

        aot = aot_autograd(fw_compiler=forward, decompositions=decomposition_table())
        return aot(gm, example_inputs)

    compiled = torch.compile(_entry(model), backend=backend, dynamic=False)
    from irc.errors import unwrapping_irc_errors
    mha = torch.backends.mha
    fastpath = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            output = unwrapping_irc_errors(compiled)(*args, **kwargs)
    finally:
        mha.set_fastpath_enabled(fastpath)
    if not graphs:
        raise IrcError("irc.export: dynamo captured no graph from the model: nothing to export")
    if len(graphs) > 1:
        raise IrcError(f"irc.export: the model breaks into {len(graphs)} graphs (a graph break: "
                       "Python code dynamo cannot trace between them); a package holds one "
                       "graph. Find the break with TORCH_LOGS=graph_breaks")
    return graphs[0], output, user


def _output_names(output: Any, prefix: str = "") -> list[str]:
    """Names of the tensors of ``output`` in :func:`flat_tensors` order."""
    if isinstance(output, torch.Tensor):
        return [prefix or "output"]
    if output is None or isinstance(output, (int, float, bool, str)):
        return []
    if hasattr(output, "to_tuple") and hasattr(output, "keys"):
        output = {k: output[k] for k in output.keys()}

    def join(k: object) -> str:
        return f"{prefix}.{k}" if prefix else str(k)
    if isinstance(output, Mapping):
        return [n for k, v in output.items() for n in _output_names(v, join(k))]
    if isinstance(output, (list, tuple)):
        return [n for i, v in enumerate(output) for n in _output_names(v, join(i))]
    from irc.debug.capture import flat_tensors
    return [f"{join(i)}" for i in range(len(flat_tensors(output)))]


def _spec(t: torch.Tensor) -> dict:
    return {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}


def export(model: Callable[..., Any], example_inputs: Sequence[Any] | Mapping[str, Any] | Any,
           path: str | Path, target: str = "cpu", options: Mapping[str, Any] | None = None,
           c_abi: bool | None = None) -> Path:
    """Compile ``model`` for ``example_inputs``' shapes and write a package at ``path``
    (a directory, conventionally ``*.ircpkg``); returns its path. Load it with
    :func:`irc.load` (no compiler needed) or from C (``irc_model.h``).

    ``c_abi``: None (default) adds the native schedule and C ABI where every
    step has a native version (else ``manifest["c_abi"]["reason"]`` says which
    op does not); True makes a missing one an error; False leaves it out."""
    c_abi_required = c_abi is True
    from irc import __version__
    from irc.debug.capture import flat_tensors, split_inputs
    from irc.driver import check_target
    from irc.package_format import HEADER, LIBRARY, SCHEDULE, WEIGHTS, write_atomically
    if target not in ("cpu", "llvm"):
        raise IrcError(f"irc.export: target {target!r} cannot be exported; packages are for "
                       "target='cpu'")
    if not callable(model):
        raise IrcError(f"irc.export needs an nn.Module or a function, got {type(model).__name__}")
    config = check_target("cpu", options)
    args, kwargs = split_inputs(example_inputs)
    started = time.perf_counter()
    captured, output, user = _capture(model, args, kwargs, "cpu", options)
    flat = flat_tensors(output)
    names = _output_names(output)
    if len(names) != len(flat):
        names = [f"output_{i}" for i in range(len(flat))]
    graph_outs = captured.outputs
    positions = []
    for i, t in enumerate(flat):
        at = next((j for j, o in enumerate(graph_outs) if o is t), None)
        if at is None or not isinstance(captured.layout[at], int):
            raise IrcError(f"irc.export: output {names[i]} is not computed by the graph "
                           "(an input or a constant returned as is); a package returns what "
                           "its graph computes")
        positions.append(captured.layout[at])
    by_name = dict(user)
    inputs = [{"name": n, **_spec(by_name[n])} for n in captured.input_names]
    outputs = [{"name": n, **_spec(t)} for n, t in zip(names, flat)]

    from irc.backends.llvm.package import link_shared_library, package_parts
    parts = package_parts(captured.program.module, captured.program.weights, config.cache)
    schedule = dict(parts.schedule)
    main_outputs = schedule["outputs"]
    schedule["outputs"] = [main_outputs[p] for p in positions]
    schedule["copy_outputs"] = [i for i, p in enumerate(positions)
                                if p in set(parts.schedule["copy_outputs"])]
    schedule["input_names"] = list(captured.input_names)
    from safetensors.torch import save
    from irc.backends.llvm.native import native_sources
    blob = save({k: v.contiguous() for k, v in parts.tensors.items()})
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + header_len])
    offsets = {k: (8 + header_len + v["data_offsets"][0], v["data_offsets"][1] - v["data_offsets"][0])
               for k, v in header.items() if k != "__metadata__"}
    if c_abi is False:
        c_sources, c_abi_info = {}, {"available": False, "reason": "exported with c_abi=False"}
    else:
        import hashlib
        c_sources, c_abi_info = native_sources(schedule, offsets, len(blob),
                                               hashlib.sha256(blob).hexdigest(), inputs, outputs)
    if c_abi_required and not c_abi_info["available"]:
        raise IrcError(f"irc.export: no C ABI for this model: {c_abi_info['reason']}")

    def fill(tmp: Path) -> dict:
        link_shared_library(parts.objects, tmp / LIBRARY, c_sources)
        (tmp / SCHEDULE).write_text(json.dumps(schedule, separators=(",", ":")))
        (tmp / WEIGHTS).write_bytes(blob)
        if c_abi_info["available"]:
            from irc.backends.llvm.native import HEADER_TEXT
            (tmp / HEADER).write_text(HEADER_TEXT)
        weight_bytes = sum(v.numel() * v.element_size() for v in parts.tensors.values())
        quantize = config.quantize.weights
        return {
            "format": "irc-package", "format_version": 1, "irc_version": __version__,
            "target": "cpu", "model": type(model).__name__ if isinstance(model, torch.nn.Module)
            else getattr(model, "__qualname__", "function"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpu": parts.cpu, "inputs": inputs, "outputs": outputs,
            "symbolic_dims": {},  # static compile: every dimension is fixed
            "weights": {"tensors": len(parts.tensors), "bytes": weight_bytes,
                        "quantized": None if quantize == "none" else quantize},
            "kernels": len(parts.objects),
            "library_calls": {"torch": sorted(set(parts.aten_calls))},
            "c_abi": c_abi_info,
            "export_seconds": round(time.perf_counter() - started, 3),
        }
    return write_atomically(Path(path), fill)
