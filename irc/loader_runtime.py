"""Runs an exported host schedule (``schedule.json``) with torch and ctypes only.

The Python side of ``irc.load``: no xdsl, llvmlite, triton or dynamo. The
schedule (written by :mod:`irc.backends.llvm.package`) is the same walk over
``@main`` the JIT's :class:`irc.backends.llvm.runtime.HostProgram` makes, and
this runtime follows it step for step:

* planned intermediates are fixed views into one arena (``arena_bytes``,
  ``fixed`` offsets); a launch's pointer list is built once, fixed pointers
  filled in, so a call fills in inputs and fresh outputs only;
* weights and constants come from the package's memory-mapped tensors;
  weight-derived steps run once, when the program is built (a package's
  weights do not change);
* a kernel launch calls the kernel's symbol in the package's library through
  ctypes (GIL released); a parallel kernel of enough work runs through its
  ``.omp`` entry on torch's OpenMP team, which :func:`link_openmp` finds in
  the process as the JIT does and hands to the library's shim;
* library calls (matmul, convolution through oneDNN with the weight packed
  once, attention, pooling, gather, embedding, concat, ``graph.aten_call``)
  run torch's kernels exactly as the JIT runtime does; the quantized matmul
  runs its generated kernel from the library.

Inputs are checked like the JIT's (dtype, shape, contiguity, device): a wrong
input is an :class:`irc.InputMismatchError`, never a call into native code.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from irc.backends.llvm.int4_layout import permute_for_int4
from irc.errors import InputMismatchError, PackageError

Env = list
Step = Callable[[Env], object]
"""One step of the schedule on the value table (what it returns is not used)."""
OPENMP_MIN_WORK = 1 << 14
"""Elements per chunk worth a thread of the OpenMP team (the JIT's default)."""
_RUNTIME_NAMES = ("libgomp", "libiomp5", "libomp")


def dtype_named(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise PackageError(f"schedule: unknown dtype {name!r}")
    return dtype


class Spec:
    """What a tensor handed to native code must look like."""

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype: torch.dtype, shape: Sequence[int]) -> None:
        self.dtype, self.shape = dtype, torch.Size(shape)

    def fits(self, t: object) -> bool:
        return (isinstance(t, torch.Tensor) and t.dtype == self.dtype and t.shape == self.shape
                and t.device.type == "cpu" and t.is_contiguous())

    def check(self, t: object, what: str) -> None:
        """Raise InputMismatchError unless ``t`` fits (the JIT runtime's wording)."""
        if self.fits(t):
            return
        want = f"a contiguous {self.dtype} tensor of shape {list(self.shape)} on cpu"
        if not isinstance(t, torch.Tensor):
            raise InputMismatchError(f"{what}: expected {want}; got {type(t).__name__}")
        wrong = []
        if t.device.type != "cpu":
            wrong.append(f"device {t.device}")
        if t.dtype != self.dtype:
            wrong.append(f"dtype {t.dtype}")
        if t.shape != self.shape:
            wrong.append(f"shape {list(t.shape)}")
        if not wrong:
            wrong.append(f"non-contiguous strides {list(t.stride())}")
        raise InputMismatchError(f"{what}: expected {want}; got " + ", ".join(wrong))

    def empty(self) -> torch.Tensor:
        return torch.empty(self.shape, dtype=self.dtype)


# -- OpenMP: torch's own team, as the JIT uses it -----------------------------------
@lru_cache(maxsize=1)
def openmp_addresses() -> tuple[int, int, int] | None:
    """(GOMP_parallel, omp_get_thread_num, omp_get_num_threads) of the OpenMP
    runtime torch has mapped, or None (then parallel kernels run serially)."""
    try:
        if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
            return None
        lines = Path("/proc/self/maps").read_text().splitlines()
    except Exception:
        return None
    paths: list[str] = []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and os.path.basename(parts[5]).startswith(_RUNTIME_NAMES) \
                and ".so" in parts[5] and parts[5].strip() not in paths:
            paths.append(parts[5].strip())
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            addrs = [ctypes.cast(getattr(lib, n), ctypes.c_void_p).value for n in
                     ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")]
        except (OSError, AttributeError):
            continue
        if all(addrs):
            return addrs[0], addrs[1], addrs[2]  # type: ignore[return-value]
    return None


def link_openmp(lib: ctypes.CDLL) -> bool:
    """Point the library's OpenMP shim at torch's runtime; whether one was found."""
    addrs = openmp_addresses()
    setter = lib.irc_set_openmp
    setter.argtypes = [ctypes.c_void_p] * 3
    setter.restype = None
    setter(*(addrs or (None, None, None)))
    return addrs is not None


def _cores() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# -- library calls ----------------------------------------------------------------
def _from_cl(props: Mapping, x: torch.Tensor) -> torch.Tensor:
    if not props.get("channels_last"):
        return x
    return x.contiguous().permute(0, x.dim() - 1, *range(1, x.dim() - 1))


def _to_cl(props: Mapping, y: torch.Tensor) -> torch.Tensor:
    if not props.get("channels_last"):
        return y
    return y.permute(0, *range(2, y.dim()), 1).contiguous()


def _attention(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in a[:3])
    mask = a[3] if len(a) > 3 else None
    causal, scale = bool(p.get("is_causal")), p["scale"]
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    if q.dim() != 4:
        lead = q.shape[:-2]
        as4 = [x.reshape(-1, 1, *x.shape[-2:]) for x in (q, k, v)]
        if mask is not None:
            mask = mask.expand(*lead, q.shape[-2], k.shape[-2]).reshape(-1, 1, q.shape[-2],
                                                                       k.shape[-2])
        r = flash(*as4, 0.0, causal, attn_mask=mask, scale=scale)[0]
        return r.reshape(*lead, *r.shape[-2:])
    return flash(q, k, v, 0.0, causal, attn_mask=mask, scale=scale)[0]


def _conv(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    x = _from_cl(p, a[0])
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[x.dim() - 2]
    y = fn(x, a[1], a[2] if len(a) > 2 else None, stride=p["stride"], padding=p["padding"],
           dilation=p["dilation"], groups=p["groups"])
    return _to_cl(p, y)


_EPILOGUE: dict[str, Callable[[torch.Tensor, Sequence[float]], torch.Tensor]] = {
    "none": lambda y, s: y, "relu": lambda y, s: F.relu(y),
    "hardtanh": lambda y, s: F.hardtanh(y, s[0], s[1]), "swish": lambda y, s: F.silu(y),
    "sigmoid": lambda y, s: torch.sigmoid(y), "tanh": lambda y, s: torch.tanh(y)}
"""``graph.conv_epilogue``'s activations (ir/graph.py CONV_EPILOGUE_UNARY)."""


def _conv_epilogue(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    """``unary(conv(x, w, b) + other)``, channels-last in and out."""
    bias = a[2] if p["has_bias"] else None
    other = a[2 + int(p["has_bias"])] if p["has_other"] else None
    y = _conv(p, [a[0], a[1], *([bias] if bias is not None else [])], out)
    if other is not None:
        y = y + other
    return _EPILOGUE[p["unary"]](y, list(p.get("unary_scalars") or [])).contiguous()


def _max_pool(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    k = p["kernel"]
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(k)]
    dilation = p.get("dilation") or [1] * len(k)
    return _to_cl(p, fn(_from_cl(p, a[0]), k, p["stride"], p["padding"], dilation,
                        ceil_mode=bool(p.get("ceil_mode"))))


def _avg_pool(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    k = p["kernel"]
    fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(k)]
    kwargs: dict[str, object] = {}
    if len(k) > 1 and p.get("divisor"):
        kwargs["divisor_override"] = p["divisor"]
    return _to_cl(p, fn(_from_cl(p, a[0]), k, p["stride"], p["padding"],
                        ceil_mode=bool(p.get("ceil_mode")),
                        count_include_pad=bool(p.get("count_include_pad", True)), **kwargs))


def _adaptive(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    if a[0].dim() >= 4:
        return F.adaptive_avg_pool2d(a[0], (out.shape[-2], out.shape[-1]))
    return F.adaptive_avg_pool1d(a[0], (out.shape[-1],))


LIBRARY: dict[str, Callable[[Mapping, list[torch.Tensor], Spec], torch.Tensor]] = {
    "graph.attention": _attention,
    "graph.conv": _conv,
    "graph.conv_epilogue": _conv_epilogue,
    "graph.max_pool": _max_pool,
    "graph.avg_pool": _avg_pool,
    "graph.adaptive_avg_pool": _adaptive,
    "graph.matmul": lambda p, a, o: torch.matmul(a[0], a[1]),
    "graph.concat": lambda p, a, o: torch.cat(a, dim=p["dim"]),
    "graph.gather": lambda p, a, o: torch.gather(a[0], p["dim"], a[1].to(torch.int64)),
    "graph.index_select": lambda p, a, o: torch.index_select(a[0], p["dim"], a[1].to(torch.int64)),
    "graph.embedding": lambda p, a, o: F.embedding(a[1].to(torch.int64), a[0]),
}
"""Library calls by graph op name: (properties, operands, result spec) -> result."""


def _decode_list(values: object, inputs: Sequence[torch.Tensor]) -> list[object]:
    """The positional arguments of a ``graph.aten_call`` (a JSON list) -> python."""
    if not isinstance(values, list):
        raise PackageError(f"graph.aten_call: positional arguments {values!r} are not a list")
    return [_decode(v, inputs) for v in values]


def _decode(value: object, inputs: Sequence[torch.Tensor]) -> object:
    """A ``graph.aten_call`` argument (see ``irc.ir.graph.AtenCallOp``) -> python."""
    if isinstance(value, list):
        return [_decode(v, inputs) for v in value]
    if isinstance(value, dict):
        if "$t" in value:
            return inputs[value["$t"]]  # type: ignore[index]
        if "$dtype" in value:
            return getattr(torch, value["$dtype"])  # type: ignore[arg-type]
        if "$device" in value:
            return torch.device(value["$device"])  # type: ignore[arg-type]
        if "$layout" in value:
            return getattr(torch, value["$layout"])  # type: ignore[arg-type]
        if "$memory_format" in value:
            return getattr(torch, value["$memory_format"])  # type: ignore[arg-type]
        return {k: _decode(v, inputs) for k, v in value.items()}
    return value


def aten_call(callee: str, args: str, dtypes: Sequence[torch.dtype],
              inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """torch's op ``callee`` on ``inputs`` (what ``irc.ir.interpreter.run_aten_call``
    does: fresh, contiguous results in the declared dtypes, never an input's storage)."""
    namespace, rest = callee.split("::", 1)
    name, overload = rest.rsplit(".", 1)
    try:
        fn = getattr(getattr(getattr(torch.ops, namespace), name), overload)
    except AttributeError:
        raise PackageError(f"graph.aten_call: this torch has no operator {callee}") from None
    positional, keywords = json.loads(args)
    out = fn(*_decode_list(positional, inputs),
             **{k: _decode(v, inputs) for k, v in keywords.items()})
    flat = [t for t in (out if isinstance(out, (tuple, list)) else [out])
            if isinstance(t, torch.Tensor)]
    storages = {t.untyped_storage().data_ptr() for t in inputs if t.numel()}
    results = []
    for t, dtype in zip(flat, dtypes):
        t = t.to(dtype=dtype).contiguous()
        if t.numel() and t.untyped_storage().data_ptr() in storages:
            t = t.clone()
        results.append(t)
    return results


# -- the program --------------------------------------------------------------------
class ScheduleProgram:
    """A package's host schedule as a list of closures (see the module docstring)."""

    def __init__(self, schedule: Mapping, lib: ctypes.CDLL, tensors: Mapping[str, torch.Tensor],
                 threads: int = 0) -> None:
        self.lib = lib
        self.threads = threads
        self.openmp = link_openmp(lib)
        self.specs = [Spec(dtype_named(v["dtype"]), v["shape"]) for v in schedule["values"]]
        self.inputs: list[int] = list(schedule["inputs"])
        self.input_names: list[str] = list(schedule["input_names"])
        self.outputs: list[int] = list(schedule["outputs"])
        self.copy_outputs: list[int] = list(schedule.get("copy_outputs", []))
        self.lock = threading.Lock()
        self.arena = torch.empty(max(int(schedule["arena_bytes"]), 1), dtype=torch.uint8)
        self.fixed: dict[int, torch.Tensor] = {}
        for slot, offset in schedule["fixed"]:
            spec = self.specs[slot]
            nbytes = spec.shape.numel() * spec.dtype.itemsize
            self.fixed[slot] = self.arena[offset:offset + nbytes].view(spec.dtype).view(spec.shape)
        env: Env = [None] * len(self.specs)
        for name, slot in schedule["constants"]:
            self.fixed[slot] = self._tensor(tensors, name)
        for name, slot in schedule["weights"]:
            t = self._tensor(tensors, name)
            self.specs[slot].check(t, f"weight \"{name}\"")
            env[slot] = t
        derived = [self._step(s) for s in schedule["derived_steps"]]
        self.steps = [self._step(s) for s in schedule["steps"]]
        self._add_releases(schedule.get("releases", []))
        for slot, t in self.fixed.items():
            env[slot] = t
        for step in derived:  # weight-derived: the package's weights are fixed
            step(env)
        self.template = env

    @staticmethod
    def _tensor(tensors: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
        if name not in tensors:
            raise PackageError(f"weights: the schedule reads \"{name}\", which the package's "
                               f"weights file does not hold; export the model again")
        return tensors[name]

    def _add_releases(self, releases: list[list[int]]) -> None:
        for i, *slots in releases:
            step = self.steps[i]

            def with_release(env: Env, step: Step = step, slots: list[int] = slots) -> None:
                step(env)
                for j in slots:
                    env[j] = None
            self.steps[i] = with_release

    # -- steps ------------------------------------------------------------------------
    def _step(self, s: Mapping) -> Step:
        op = s["op"]
        if op == "launch":
            return self._launch(s)
        if op == "view":
            return self._view(s)
        if op == "graph.quantized_matmul":
            return self._quantized_matmul(s)
        if op == "graph.aten_call":
            return self._aten_call(s)
        if op == "graph.matmul":
            return self._matmul(s)
        if op == "graph.conv" and (step := self._packed_conv(s)) is not None:
            return step
        if op in LIBRARY:
            return self._library(s)
        raise PackageError(f"schedule: this irc's loader cannot run {op} "
                           f"(at {s.get('source', '?')}); load the package with the irc that wrote it")

    def _kernel(self, symbol: str, n: int, tail: tuple) -> Callable[..., None]:
        try:
            addr = ctypes.cast(self.lib[symbol], ctypes.c_void_p).value
        except AttributeError:
            addr = None
        if addr is None:
            raise PackageError(f"library: no symbol {symbol}; export the model again")
        return ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * n), *tail)(addr)

    def _args(self, values: list[int], n_in: int) -> tuple[list, list, list]:
        args: list = [0] * len(values)
        dynamic, fresh = [], []
        for pos, slot in enumerate(values):
            if slot in self.fixed:
                args[pos] = self.fixed[slot].data_ptr()
            elif pos >= n_in:
                fresh.append((pos, slot, self.specs[slot]))
            else:
                dynamic.append((pos, slot))
        return args, dynamic, fresh

    def _launch(self, s: Mapping) -> Step:
        values = list(s["in"]) + list(s["out"])
        n, trip = len(values), int(s["trip"])
        args, dynamic, fresh = self._args(values, len(s["in"]))
        i64 = (ctypes.c_int64, ctypes.c_int64)
        run: Callable[[list], None]
        if not s["parallel"]:
            serial = self._kernel(s["kernel"], n, ())

            def run_serial(a: list) -> None:
                serial(*a)
            run = run_serial
        else:
            fn = self._kernel(s["kernel"], n, i64)
            per_iteration = max(max((self.specs[v].shape.numel() for v in s["out"]), default=1)
                                // max(trip, 1), 1)
            run = self._parallel(s["kernel"], fn, trip, n,
                                 max(-(-OPENMP_MIN_WORK // per_iteration), 1))

        if not dynamic and not fresh:
            fixed = list(args)
            return lambda env: run(fixed)

        def step(env: Env) -> None:
            for pos, slot in dynamic:
                args[pos] = env[slot].data_ptr()
            for pos, slot, spec in fresh:
                t = env[slot] = spec.empty()
                args[pos] = t.data_ptr()
            run(args)
        return step

    def _parallel(self, kernel: str, fn: Callable[..., None], trip: int, n: int,
                  min_iterations: int) -> Callable[[list], None]:
        """Run ``fn`` over ``[0, trip)``: on the OpenMP team in chunks of at least
        ``min_iterations`` where there is one and the work is worth it, else inline."""
        most = trip // min_iterations
        if not self.openmp or most < 2 or self.threads == 1:
            return lambda a: fn(*a, 0, trip)
        omp = self._kernel(kernel + ".omp", n, (ctypes.c_int64, ctypes.c_int64, ctypes.c_int32))
        cores = _cores()
        cap = self.threads if self.threads > 0 else 1 << 30

        def launch(a: list) -> None:
            chunks = min(most, cap, torch.get_num_threads(), cores)
            if chunks <= 1:
                fn(*a, 0, trip)
            else:
                omp(*a, 0, trip, chunks)
        return launch

    def _view(self, s: Mapping) -> Step:
        src, out = s["in"][0], s["out"][0]
        steps = s["steps"]

        def apply(t: torch.Tensor) -> torch.Tensor:
            for kind, *args in steps:
                if kind == "permute":
                    t = t.permute(args[0])
                elif kind == "reshape":
                    t = t.reshape(args[0])
                elif kind == "expand":
                    t = t.expand(args[0])
                else:
                    dim, start, end, step = args
                    t = t[(slice(None),) * dim + (slice(start, end, step),)]
            return t

        if src in self.fixed:
            source = self.fixed[src]
            view = apply(source)
            if view.untyped_storage().data_ptr() == source.untyped_storage().data_ptr():
                self.fixed[out] = view
                return lambda env: None

        def step(env: Env) -> None:
            env[out] = apply(env[src])
        return step

    def _matmul(self, s: Mapping) -> Step:
        a, b = s["in"]
        out = s["out"][0]
        if out in self.fixed:
            result = self.fixed[out]
            return lambda env: torch.matmul(env[a], env[b], out=result)
        spec = self.specs[out]

        def step(env: Env) -> None:
            r = env[out] = spec.empty()
            torch.matmul(env[a], env[b], out=r)
        return step

    def _packed_conv(self, s: Mapping) -> Step | None:
        """A 2-d float32 channels-last convolution through oneDNN with the weight
        packed once (the JIT's ``backends/llvm/conv.py``); None: the generic call."""
        p, ins, out = s["props"], s["in"], s["out"][0]
        x_spec, w_spec = self.specs[ins[0]], self.specs[ins[1]]
        if not (p.get("channels_last") and len(x_spec.shape) == 4
                and self.specs[out].dtype == torch.float32 and w_spec.dtype == torch.float32
                and torch.backends.mkldnn.is_available()
                and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
            return None
        padding, stride, dilation, groups = p["padding"], p["stride"], p["dilation"], p["groups"]
        n, h, w, c = x_spec.shape
        pointwise = torch.ops.mkldnn._convolution_pointwise
        packed: list[torch.Tensor] = []
        xi, wi = ins[0], ins[1]
        bi = ins[2] if len(ins) > 2 else None

        def step(env: Env) -> None:
            if not packed:  # a package's weights (and weight-derived values) never change
                packed.append(torch.ops.mkldnn._reorder_convolution_weight(
                    env[wi], padding, stride, dilation, groups, [n, c, h, w]))
            y = pointwise(env[xi].permute(0, 3, 1, 2), packed[0],
                          env[bi] if bi is not None else None, padding, stride, dilation,
                          groups, "none", [], "")
            y = y.permute(0, 2, 3, 1)
            env[out] = y if y.is_contiguous() else y.contiguous()
        return step

    def _library(self, s: Mapping) -> Step:
        fn, props, ins, out = LIBRARY[s["op"]], s["props"], list(s["in"]), s["out"][0]
        spec = self.specs[out]
        if out in self.fixed and s["op"] in ("graph.concat", "graph.gather",
                                             "graph.index_select", "graph.embedding"):
            return self._library_out(s["op"], props, ins, self.fixed[out])

        def step(env: Env) -> None:
            r = fn(props, [env[i] for i in ins], spec)
            if r.dtype != spec.dtype:
                r = r.to(spec.dtype)
            env[out] = r.contiguous()
        return step

    @staticmethod
    def _library_out(op: str, p: Mapping, ins: list[int], result: torch.Tensor) -> Step:
        long = torch.int64
        if op == "graph.concat":
            dim = p["dim"]
            return lambda env: torch.cat([env[i] for i in ins], dim=dim, out=result)
        a, b = ins
        if op == "graph.gather":
            return lambda env: torch.gather(env[a], p["dim"], env[b].to(long), out=result)
        if op == "graph.index_select":
            return lambda env: torch.index_select(env[a], p["dim"], env[b].to(long), out=result)
        rows = result.view(-1, result.shape[-1])
        return lambda env: torch.index_select(env[a], 0, env[b].reshape(-1).to(long), out=rows)

    def _aten_call(self, s: Mapping) -> Step:
        ins, outs = list(s["in"]), list(s["out"])
        callee, args = s["props"]["callee"], s["props"]["args"]
        dtypes = [self.specs[o].dtype for o in outs]

        def step(env: Env) -> None:
            for slot, t in zip(outs, aten_call(callee, args, dtypes, [env[i] for i in ins])):
                env[slot] = t
        return step

    def _quantized_matmul(self, s: Mapping) -> Step:
        xi, qi, si = s["in"]
        out = s["out"][0]
        m, k, n = int(s["m"]), int(s["k"]), int(s["n"])
        i64 = (ctypes.c_int64, ctypes.c_int64)
        fn = self._kernel(s["kernel"], 5, i64)  # x, x permuted for int4, q, scales, y
        min_channels = max(-(-(1 << 15) // max(m * k, 1)), 1)
        spec = Spec(torch.float32, self.specs[out].shape)
        launch = self._parallel(s["kernel"], fn, n, 5, min_channels)
        permute = bool(s.get("permute_int4"))
        dtype = self.specs[out].dtype
        f32 = torch.float32

        def step(env: Env) -> None:
            x = env[xi].to(f32).contiguous()
            xv = permute_for_int4(x.view(m, k)) if permute else x
            q, scales = env[qi].contiguous(), env[si].contiguous()
            y = spec.empty()
            if n and m:
                launch([x.data_ptr(), xv.data_ptr(), q.data_ptr(), scales.data_ptr(), y.data_ptr()])
            env[out] = y if dtype == f32 else y.to(dtype)
        return step

    # -- call -------------------------------------------------------------------------
    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        slots = self.inputs
        if len(inputs) != len(slots):
            raise InputMismatchError(f"expected {len(slots)} inputs, got {len(inputs)}")
        specs = self.specs
        for i, slot in enumerate(slots):
            if not specs[slot].fits(inputs[i]):
                specs[slot].check(inputs[i], f"input {i} ({self.input_names[i]})")
        with self.lock:
            env = self.template.copy()
            for slot, t in zip(slots, inputs):
                env[slot] = t
            for step in self.steps:
                step(env)
            results = [env[i] for i in self.outputs]
        for i in self.copy_outputs:
            results[i] = results[i].clone()
        return results
