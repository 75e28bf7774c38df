"""Capture: from torch programs to compiled callables, through dynamo and AOTAutograd.

* :func:`make_dynamo_backend` gives the function ``torch.compile`` calls per
  captured graph. It traces the graph to core aten with AOTAutograd (our
  decomposition table; parameters arrive as graph inputs, so they are arguments
  of ``@main`` and no weight is copied), imports the forward (and, when
  gradients are needed, the backward) graph and compiles each through
  :func:`irc.driver.compile_program`. An inference graph keeps its input
  mutations (``copy_`` into a placeholder): a cache update becomes an in-place
  ``graph.cache_update``, any other write is copied back after the call
  (:mod:`irc.frontends.input_mutations`).
* :func:`compile_graph` compiles one aten graph. Nodes the graph dialect cannot
  express run in eager PyTorch: the graph is split (``split_module``) into
  compiled and eager pieces, and ONE :class:`IrcWarning` names each such op and
  the user's source line (once per compile: the ``warned`` set that
  :func:`make_dynamo_backend` makes for one ``irc.compile``). ``strict=True`` raises
  :class:`irc.UnsupportedOpError` instead. Nothing is silently wrong.
* :func:`export_program` / :func:`import_graph_module` are the ahead-of-time
  entries: ``torch.export`` + ``run_decompositions``, parameters and buffers as
  ``graph.weight`` ops referring to the model's own tensors.
"""


from __future__ import annotations

import contextlib
import gc
import operator
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.fx

from irc.errors import IrcError, UnsupportedOpError
from irc.frontends.decompositions import decomposition_table
from irc.frontends.input_mutations import lift_input_mutations, with_copies_back
from irc.frontends.fx_importer import FxImporter, _flat_outputs, static_problems
from irc.frontends.unsupported import NodeUnsupported, op_name
from irc.passes.derived_weights import DerivedWeights
from irc.frontends.program import Program
from irc.frontends.source_locations import describe, source_line

if TYPE_CHECKING:
    from irc.stats import CompileStats

Runner = Callable[..., Any]


class IrcWarning(UserWarning):
    """irc's warnings (e.g. an op that runs in eager PyTorch instead of compiled)."""


def compile_program_once(program: Program, target: str, options: Mapping[str, Any] | Any | None) -> Runner:
    """The one place the frontend hands a Program to the rest of the compiler
    (``options``: an :class:`irc.config.Config` or a mapping of its keys)."""
    from irc.driver import compile_program
    return compile_program(program, target, options)


class CompiledGraph:
    """Calls a compiled Program with an FX graph's flat inputs; returns its flat outputs."""

    def __init__(self, executable: Runner, layout: Sequence[int | tuple[str, Any]],
                 arg_positions: Sequence[int], program: Program,
                 strides: Sequence[tuple[tuple[int, ...], bool] | None] = (),
                 weight_args: Sequence[tuple[int, str]] = ()) -> None:
        self.executable = executable
        self.layout = list(layout)
        self.arg_positions = list(arg_positions)
        self.program = program
        # (position, weight name) of placeholders imported as graph.weight: a
        # call passing another tensor there (a replaced parameter) puts it in
        # the program's weight store, so the runtime sees a new weight
        self.weight_args = [(i, n) for i, n in weight_args if n in program.weights]
        self._seen: list[Any] = [None] * len(self.weight_args)
        # per FX output: the strides eager gives it (the graph's example value)
        # and whether that layout is contiguous, where they are dense and not
        # the row-major strides; None: keep irc's own
        self.strides = list(strides) or [None] * len(self.layout)
        self.sizes: dict[str, int] = {}  # size symbol -> flat input carrying it (size outputs)
        self.arg_types: list[Any] = []  # @main's argument types (symbolic sizes)
        self.size_names: list[str | None] = []  # per @main argument: the size symbol it carries

    def _size(self, expr: Any, args: Sequence[Any]) -> int:
        """A size output (a SymInt of the graph) evaluated for this call's sizes."""
        from irc.ir.symbols import bind_inputs, evaluate
        binding = {name: int(args[i]) for name, i in self.sizes.items()}
        binding.update(bind_inputs(self.arg_types, self.size_names,
                                   [args[i] for i in self.arg_positions]))
        return evaluate(expr, binding)

    def __call__(self, *args: Any) -> list[Any]:
        if self.weight_args:
            self._track_weights(args)
        tensors = []
        for i in self.arg_positions:
            a = args[i]
            tensors.append(a.contiguous() if isinstance(a, torch.Tensor) else a)
        results = self.executable(*tensors)
        outs = [results[item] if isinstance(item, int) else
                self._size(item[1], args) if item[0] == "size" else item[1] for item in self.layout]
        for i, want in enumerate(self.strides):
            out = outs[i]
            if want is not None and isinstance(out, torch.Tensor) and out.stride() != want[0]:
                if want[1] and out.is_contiguous():  # differ only where a dim has size 1
                    outs[i] = out.as_strided(out.shape, want[0])
                else:
                    outs[i] = torch.empty_strided(out.shape, want[0], dtype=out.dtype,
                                                  device=out.device).copy_(out)
        return outs

    def _track_weights(self, args: Sequence[Any]) -> None:
        """The weight store holds the tensors this call passed (identity check;
        the runtime keys weight-derived values on identity and version)."""
        seen, weights = self._seen, self.program.weights
        for k, (pos, name) in enumerate(self.weight_args):
            a = args[pos]
            if a is not seen[k]:
                seen[k] = a
                weights[name] = a.detach()


def size_positions(gm: torch.fx.GraphModule) -> dict[str, int]:
    """Size symbol -> the index of the placeholder (dynamo's SymInt input) that carries it."""
    from irc.frontends.symbolic_sizes import normalizer_for
    out: dict[str, int] = {}
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    sizes = normalizer_for(n.meta.get("val") for n in placeholders)
    for i, n in enumerate(placeholders):
        val = n.meta.get("val")
        if isinstance(val, torch.SymInt) and sizes is not None:
            d = sizes(val)
            if not isinstance(d, int) and d.is_Symbol:
                out.setdefault(str(d), i)
    return out


def eager_output_strides(gm: torch.fx.GraphModule) -> list[tuple[tuple[int, ...], bool] | None]:
    """Per FX output, the strides of its example value (and whether they are
    contiguous up to size-1 dims) when they are dense, non-overlapping and
    not the row-major ones (e.g. a transpose or channels last), else None.

    The piece of a split graph (dynamo's DDPOptimizer, AOTAutograd's
    forward/backward) hands its outputs to eager code and to the next piece,
    which were traced with eager's strides; irc's results are contiguous, so
    those outputs are restrided (one copy) to match.
    """
    from torch._prims_common import is_non_overlapping_and_dense_or_false, make_contiguous_strides_for
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    strides: list[tuple[tuple[int, ...], bool] | None] = []
    for item in _flat_outputs(out_node.args[0]):
        val = item.meta.get("val") if isinstance(item, torch.fx.Node) else None
        if not isinstance(val, torch.Tensor) or any(isinstance(s, torch.SymInt) for s in val.stride()) \
                or not is_non_overlapping_and_dense_or_false(val):
            # (symbolic strides: irc's contiguous result is kept; reading them
            # as ints would specialise the sizes they depend on)
            strides.append(None)
            continue
        stride = tuple(int(s) for s in val.stride())
        if stride == tuple(make_contiguous_strides_for(val.shape)):
            strides.append(None)
        else:
            strides.append((stride, val.is_contiguous()))
    return strides


class _CompiledSubmodule(torch.nn.Module):
    """Stands in for a supported piece of a split graph."""

    def __init__(self, graph: CompiledGraph, single_output: bool) -> None:
        super().__init__()
        self.graph = graph
        self.single_output = single_output

    def forward(self, *args: Any) -> Any:
        outs = self.graph(*args)
        return outs[0] if self.single_output else tuple(outs)


def _import(gm: torch.fx.GraphModule, target: str | None = None,
            weight_placeholders: Mapping[str, tuple[str, torch.Tensor]] | None = None
            ) -> tuple[Program, list[int | tuple[str, Any]], list[int]]:
    """Import ``gm``; with ``target``, an op that backend does not support
    (``Backend.supports``) is reported as its node being unsupported."""
    importer = FxImporter(gm, weight_placeholders)
    program = importer.run()
    if target is not None:
        from irc.backends.registry import get_backend
        backend = get_backend(target)
        for op in program.module.walk():
            node = importer.op_nodes.get(op)
            if node is not None and not backend.supports(op):
                raise NodeUnsupported(node, f"target '{target}' does not support {op.name}")
    return program, importer.output_layout, importer.arg_positions


def _weight_args(gm: torch.fx.GraphModule,
                 weight_placeholders: Mapping[str, tuple[str, torch.Tensor]] | None
                 ) -> list[tuple[int, str]]:
    """(placeholder position, weight name) of the placeholders imported as weights."""
    given = weight_placeholders or {}
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    return [(i, given[n.name][0]) for i, n in enumerate(placeholders) if n.name in given]


def _compile_whole(gm: torch.fx.GraphModule, target: str, options: Mapping[str, Any] | Any | None,
                   weight_placeholders: Mapping[str, tuple[str, torch.Tensor]] | None = None,
                   stats: CompileStats | None = None,
                   derived: DerivedWeights | None = None) -> CompiledGraph:
    program, layout, positions = _import(gm, target, weight_placeholders)
    program.derived = derived
    from irc.ir.kernel import find_main
    from irc.ir.symbols import size_arg_names
    main = find_main(program.module)
    arg_types, size_names = [a.type for a in main.args], size_arg_names(main)
    executable = compile_program_once(program, target, options)
    if stats is not None:  # program.module is now at the backend's level
        stats.record_module(program.module)
        stats.record_executable(executable)
    strides = eager_output_strides(gm)
    compiled = CompiledGraph(executable, layout, positions, program, strides,
                             _weight_args(gm, weight_placeholders))
    compiled.sizes = size_positions(gm)
    compiled.arg_types, compiled.size_names = arg_types, size_names
    return compiled


def _partition_ids(gm: torch.fx.GraphModule, unsupported: set[str]) -> dict[str, tuple[int, bool]]:
    """Consecutive runs of supported / unsupported nodes, in graph order (acyclic by construction)."""
    ids: dict[str, tuple[int, bool]] = {}
    current, last = 0, None
    eager: set[str] = set(unsupported)
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        supported = node.name not in eager
        if node.target is operator.getitem:
            source = node.args[0]
            if isinstance(source, torch.fx.Node) and source.name in eager:
                supported = False  # tuple items stay with their producer
                eager.add(node.name)
        if supported != last:
            current += 1
            last = supported
        ids[node.name] = (current, supported)
    return ids


def _compile_split(gm: torch.fx.GraphModule, unsupported: set[str], target: str,
                   options: Mapping[str, Any] | None,
                   weight_placeholders: Mapping[str, tuple[str, torch.Tensor]] | None = None,
                   stats: CompileStats | None = None,
                   derived: DerivedWeights | None = None) -> Runner:
    from torch.fx.passes.split_module import split_module
    ids = _partition_ids(gm, unsupported)
    split = split_module(gm, None, lambda n: ids[n.name][0],  # pyright: ignore[reportArgumentType]  # root_m: "not currently used" (torch's docs)
                         keep_original_order=True)
    supported_ids = {pid for pid, ok in ids.values() if ok}
    for name, sub in list(split.named_children()):
        pid = int(name.rsplit("_", 1)[-1])
        if pid not in supported_ids:
            continue
        assert isinstance(sub, torch.fx.GraphModule)
        out_node = next(n for n in sub.graph.nodes if n.op == "output")
        single = not isinstance(out_node.args[0], (tuple, list))
        # split_module names a piece's placeholders after the values it receives
        given = weight_placeholders or {}
        weights = {n.name: given[n.name] for n in sub.graph.nodes
                   if n.op == "placeholder" and n.name in given}
        setattr(split, name, _CompiledSubmodule(
            _compile_whole(sub, target, options, weights or None, stats=stats, derived=derived),
            single))

    def run(*args: Any) -> list[Any]:
        result = split(*args)
        return list(result) if isinstance(result, (tuple, list)) else [result]

    run.pieces = [m.graph for m in split.children()  # type: ignore[attr-defined]
                  if isinstance(m, _CompiledSubmodule)]  # the compiled pieces (irc.profile)
    return run


def compile_graph(gm: torch.fx.GraphModule, target: str, options: Mapping[str, Any] | None = None,
                  strict: bool = False, warned: set[tuple[str, str]] | None = None,
                  stats: CompileStats | None = None,
                  weight_placeholders: Mapping[str, tuple[str, torch.Tensor]] | None = None,
                  derived: DerivedWeights | None = None) -> Runner:
    """Compile one core-aten graph (nodes carry ``meta["val"]``); returns a
    callable taking the graph's flat inputs and returning its flat outputs.
    ``warned``: the (op, source line) pairs this compile has warned about;
    ``stats`` (when given) counts programs, kernels and the nodes left in eager;
    ``weight_placeholders`` (placeholder -> (weight name, tensor)) become
    ``graph.weight`` ops (in each compiled piece of a split graph too);
    ``derived``: quantized weights shared with the compile's other graphs."""
    warned = set() if warned is None else warned
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    nodes = {n.name: n for n in gm.graph.nodes}
    unsupported = static_problems(gm)
    with unset_fake_temporarily():
        for _ in range(len(nodes) + 1):
            if strict and unsupported:
                name, reason = next(iter(unsupported.items()))
                raise UnsupportedOpError(op_name(nodes[name]), describe(nodes[name]), reason)
            try:
                if not unsupported:
                    return _compile_whole(gm, target, options, weight_placeholders, stats=stats,
                                          derived=derived)
                runner = _compile_split(gm, set(unsupported), target, options,
                                        weight_placeholders, stats, derived)
                break
            except NodeUnsupported as err:
                name = err.node.name
                if name in unsupported or name not in nodes or nodes[name].op != "call_function":
                    # a value the split cannot pass between pieces: run the graph eagerly
                    if strict:
                        raise UnsupportedOpError(op_name(err.node), describe(err.node),
                                                 err.reason) from None
                    unsupported.setdefault(name, err.reason)
                    _warn(gm, unsupported, nodes, warned, whole_graph=True)
                    _record_eager(stats, gm.graph.nodes)
                    return _eager(gm)
                unsupported[name] = err.reason
        else:  # pragma: no cover - each round marks one more node, so this is not reached
            _warn(gm, unsupported, nodes, warned, whole_graph=True)
            _record_eager(stats, gm.graph.nodes)
            return _eager(gm)
    _warn(gm, unsupported, nodes, warned)
    _record_eager(stats, [nodes[n] for n in unsupported if n in nodes])
    return runner


def _record_eager(stats: CompileStats | None, nodes: Iterable[torch.fx.Node]) -> None:
    if stats is not None:
        stats.eager_ops.extend(op_name(n) for n in nodes if n.op == "call_function"
                               and n.target is not operator.getitem)


def _eager(gm: torch.fx.GraphModule) -> Runner:
    def run(*args: Any) -> list[Any]:
        result = gm(*args)
        return list(result) if isinstance(result, (tuple, list)) else [result]
    run.irc_eager = True  # type: ignore[attr-defined] # nothing of it is compiled
    return run


def _warn(gm: torch.fx.GraphModule, unsupported: Mapping[str, str],
          nodes: Mapping[str, torch.fx.Node], warned: set[tuple[str, str]],
          whole_graph: bool = False) -> None:
    lines = []
    for name, reason in unsupported.items():
        node = nodes.get(name)
        if node is None or node.op != "call_function":
            continue
        key = (op_name(node), describe(node))
        if key in warned:
            continue
        warned.add(key)
        lines.append(f"{key[0]} at {key[1]} ({reason})")
    if lines:
        rest = ("this graph runs in eager PyTorch" if whole_graph
                else "the rest of the graph is compiled")
        message = ("irc cannot compile " + "; ".join(lines) + f": {rest}. "
                   "Pass strict=True to make this an error.")
        where = next((source_line(nodes[n]) for n in unsupported
                      if n in nodes and source_line(nodes[n]) is not None), None)
        if where is None:
            warnings.warn(message, IrcWarning, stacklevel=3)
        else:  # shown at the user's line, like a warning raised there
            warnings.warn_explicit(message, IrcWarning, where.file, where.line, module="irc")


# ----------------------------------------------------------------------------
# dynamo


def make_dynamo_backend(target: str = "cpu", options: Mapping[str, Any] | Any | None = None,
                        strict: bool = False, stats: CompileStats | None = None,
                        on_compiled: Callable[[Runner], None] | None = None
                        ) -> Callable[[torch.fx.GraphModule, list[Any]], Runner]:
    """The ``backend=`` function for ``torch.compile``: AOTAutograd to core
    aten, then irc for the forward and backward graphs. Each op and source
    line that runs in eager is warned about once per backend made. ``stats``
    (when given) counts the graphs, what they compiled to and their runs;
    ``on_compiled`` sees each graph's runner (:func:`compile_graph`'s result;
    :mod:`irc.profile`)."""
    # functorch.compile is the public home; pyright sees only its re-export
    from functorch.compile import make_boxed_func  # pyright: ignore[reportPrivateImportUsage]
    from torch._dynamo.backends.common import aot_autograd
    warned: set[tuple[str, str]] = set()

    freeze = _quantizes(options, target)
    fold = not freeze and _versions_weights(target)
    derived = DerivedWeights()  # one quantized copy of a weight for all graphs of this compile

    def compile_boxed(gm: torch.fx.GraphModule, example_inputs: list[Any],
                      weights: Mapping[str, tuple[str, torch.Tensor]] | None = None) -> Runner:
        mutations = lift_input_mutations(gm)  # cache updates in place, other writes copied back
        with gc_paused():  # the backward's compile is called by autograd, not from backend()
            runner = with_copies_back(compile_graph(gm, target, options, strict, warned, stats,
                                                    weights, derived), mutations)
        if on_compiled is not None:
            on_compiled(runner)
        if stats is not None:
            stats.graphs += 1
            if not getattr(runner, "irc_eager", False):
                runner = stats.counting(runner)
        return make_boxed_func(runner)

    def backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Runner:
        fw_compiler = compile_boxed
        if freeze:
            fw_compiler = _frozen_compiler(gm, example_inputs, compile_boxed)
        elif fold and not _needs_grad(example_inputs):
            fw_compiler = _frozen_compiler(gm, example_inputs, compile_boxed, convolutions=True)
        # dynamo's own AOTAutograd wrapper, not aot_module_simplified: it counts
        # the call, which dynamo's DDPOptimizer needs to replay the first call
        # with fake outputs (else the first real call returned FakeTensors), and
        # keeps dynamo out of the backward compile and the backward itself
        # keep_inference_input_mutations: an inference graph that writes an
        # input ends with copy_(input, new value), seen by lift_input_mutations
        aot = aot_autograd(fw_compiler=fw_compiler, bw_compiler=compile_boxed,
                           decompositions=decomposition_table(),
                           keep_inference_input_mutations=True)
        with gc_paused():
            return aot(gm, example_inputs)

    backend.__name__ = f"irc_{target}"  # type: ignore[attr-defined]
    return backend


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (a compile).

    Tracing and compiling a graph allocate millions of objects that live to
    its end (FX nodes, fake tensors, IR ops), so the collector ran over a
    thousand times during a training step's compile, each full collection
    walking every object of the process (the model, torch, transformers):
    about a tenth of a cold compile. Reference counting still frees what it
    can; cycles made meanwhile are collected after the block, as usual.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _quantizes(options: Mapping[str, Any] | Any | None, target: str) -> bool:
    """Whether the configuration quantizes weights (``quantize.weights``)."""
    from irc.config import Config
    if options is not None and not isinstance(options, (Mapping, Config)):
        return False  # a backend Options instance: no quantization section
    return Config.from_options(options, target=target).quantize.weights != "none"


def _versions_weights(target: str) -> bool:
    """Whether ``target``'s runtime recomputes weight-derived values when a
    weight changes (``Backend.versions_weights``)."""
    from irc.backends.registry import get_backend
    try:
        return bool(getattr(get_backend(target), "versions_weights", False))
    except IrcError:
        return False


def _needs_grad(example_inputs: Sequence[Any]) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad
                                           for t in example_inputs)


def _frozen_compiler(dynamo_gm: torch.fx.GraphModule, example_inputs: list[Any],
                     compile_boxed: Callable[..., Runner], convolutions: bool = False
                     ) -> Callable[[torch.fx.GraphModule, list[Any]], Runner]:
    """A forward compiler that imports the model's parameters as ``graph.weight``
    ops (not ``@main`` arguments), so ``quantize-weights`` can rewrite them.
    In an inference graph the AOT placeholders are dynamo's inputs in order.

    ``convolutions``: for a backend that versions weights, an inference graph
    with a convolution imports its parameters and the buffers it does not
    mutate as weights, so ``fold-batch-norm`` folds batch norm into the
    convolution (the runtime refolds when a weight changes in place, and
    :class:`CompiledGraph` puts a replaced parameter in the weight store);
    other graphs compile as usual."""
    if not convolutions and _needs_grad(example_inputs):
        raise IrcError("quantize.weights is for inference: call the compiled model under "
                       "torch.no_grad() or torch.inference_mode()")
    names = [n.name for n in dynamo_gm.graph.nodes if n.op == "placeholder"]
    from torch._subclasses.fake_tensor import unset_fake_temporarily
    with unset_fake_temporarily():
        params = {i: t.detach() for i, t in enumerate(example_inputs)
                  if isinstance(t, torch.nn.Parameter) or (
                      convolutions and isinstance(t, torch.Tensor)
                      and getattr(t, "_dynamo_static_input_type", None) is not None)}

    def compile_fw(gm: torch.fx.GraphModule, fw_inputs: list[Any]) -> Runner:
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        weights: dict[str, tuple[str, torch.Tensor]] = {}
        if convolutions and not _has_convolution(gm):
            params.clear()
        mutated = _mutated_inputs() if convolutions else set()
        if len(placeholders) == len(example_inputs):
            for i, t in params.items():
                if i in mutated:
                    continue
                val = placeholders[i].meta.get("val")
                if val is not None and tuple(val.shape) == tuple(t.shape):
                    name = names[i].removeprefix("L_self_").removeprefix("L_")
                    weights[placeholders[i].name] = (name, t)
        runner = compile_boxed(gm, fw_inputs, weights or None)
        params.clear()  # the program holds what it needs; keep no other reference
        return runner
    return compile_fw


def _has_convolution(gm: torch.fx.GraphModule) -> bool:
    conv = torch.ops.aten.convolution.default
    return any(n.op == "call_function" and n.target is conv for n in gm.graph.nodes)


def _mutated_inputs() -> set[int]:
    """Inputs the graph being compiled writes in place (AOTAutograd's metadata)."""
    from torch._guards import TracingContext
    context = TracingContext.try_get()
    meta = getattr(context, "fw_metadata", None) if context is not None else None
    if meta is None:
        return set()
    return {i for i, info in enumerate(meta.input_info)
            if info.mutates_data or info.mutates_metadata}


# ----------------------------------------------------------------------------
# ahead of time


def export_program(model: torch.nn.Module | Callable[..., Any],
                   example_inputs: Sequence[Any]) -> Program:
    """``torch.export`` + core-aten decomposition -> Program. Parameters and
    buffers become ``graph.weight`` ops whose values are the model's own
    tensors (no copies); user inputs are the arguments of ``@main``."""
    from torch.export import export
    from torch.export.graph_signature import InputKind, OutputKind
    module = model if isinstance(model, torch.nn.Module) else _FunctionModule(model)
    try:
        ep = export(module, tuple(example_inputs))
    except Exception as err:  # torch.export's many exception types
        raise IrcError(f"torch.export could not capture the model: {str(err).splitlines()[0]}") from err
    ep = ep.run_decompositions(decomposition_table())
    live: dict[str, torch.Tensor] = dict(module.named_parameters(remove_duplicate=False))
    live.update(dict(module.named_buffers(remove_duplicate=False)))
    weights: dict[str, tuple[str, torch.Tensor]] = {}
    for spec in ep.graph_signature.input_specs:
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            target = spec.target
            if target is None:  # torch.export names every parameter, buffer and constant
                raise IrcError(f"exported input {spec.arg.name} of kind {spec.kind.name} has no name")
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            tensor = live.get(target) if target in live else ep.state_dict.get(target)
            if tensor is None:
                tensor = _exported_tensor(ep.constants[target], target)
            weights[spec.arg.name] = (target, tensor.detach())
        elif spec.kind == InputKind.CONSTANT_TENSOR:
            weights[spec.arg.name] = (target, _exported_tensor(ep.constants[target], target))
        elif spec.kind != InputKind.USER_INPUT:
            raise IrcError(f"exported input {spec.arg.name} of kind {spec.kind.name} is not supported")
    for out_spec in ep.graph_signature.output_specs:
        if out_spec.kind != OutputKind.USER_OUTPUT:
            raise IrcError(f"the model mutates {out_spec.target} ({out_spec.kind.name}); "
                           "call model.eval() or export a function without side effects")
    return _strict_import(ep.graph_module, weights)


def _strict_import(gm: torch.fx.GraphModule,
                   weights: Mapping[str, tuple[str, torch.Tensor]] | None = None) -> Program:
    try:
        return FxImporter(gm, weights).run()
    except NodeUnsupported as err:
        node = err.node
        raise UnsupportedOpError(op_name(node) if node.op == "call_function" else node.name,
                                 describe(node), err.reason) from None


def import_graph_module(gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Program:
    """An FX GraphModule -> Program. A graph that is already aten with example
    values on its nodes is imported as is; any other is exported first."""
    is_aten = all(n.op != "call_function" or isinstance(n.target, torch._ops.OpOverload)
                  or n.target is operator.getitem for n in gm.graph.nodes) and all(
        "val" in n.meta for n in gm.graph.nodes if n.op in ("placeholder", "call_function"))
    if is_aten:
        return _strict_import(gm)
    return export_program(gm, example_inputs)


class _FunctionModule(torch.nn.Module):
    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def _exported_tensor(value: object, name: str) -> torch.Tensor:
    """A tensor constant of an ExportedProgram (``ep.constants`` also types
    script objects and tree specs, which no parameter, buffer or tensor
    constant is)."""
    if not isinstance(value, torch.Tensor):
        raise IrcError(f"exported constant {name} is a {type(value).__name__}, not a tensor")
    return value
