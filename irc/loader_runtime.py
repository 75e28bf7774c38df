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
  run torch's kernels exactly as the JIT runtime does (what each computes is
  :mod:`irc.library_calls`', shared with the interpreter; the OpenMP team and
  the chunking of parallel kernels are :mod:`irc.openmp`'s); the quantized matmul
  runs its generated kernel from the library.

Inputs are checked like the JIT's (dtype, shape, contiguity, device): a wrong
input is an :class:`irc.InputMismatchError`, never a call into native code.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from irc.backends.llvm.int4_layout import permute_for_int4
from irc import library_calls as lib
from irc.errors import InputMismatchError, IrcError, PackageError
from irc.openmp import OPENMP_MIN_WORK, chunk_count, detect_openmp, min_iterations

Env = list
Step = Callable[[Env], object]
"""One step of the schedule on the value table (what it returns is not used)."""


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
def link_openmp(lib: ctypes.CDLL) -> bool:
    """Point the library's OpenMP shim at torch's runtime (:func:`irc.openmp.detect_openmp`,
    the one the JIT uses); whether one was found."""
    rt = detect_openmp()
    setter = lib.irc_set_openmp
    setter.argtypes = [ctypes.c_void_p] * 3
    setter.restype = None
    if rt is None:
        setter(None, None, None)
    else:
        setter(rt.parallel, rt.thread_num, rt.num_threads)
    return rt is not None


# -- library calls ----------------------------------------------------------------
# what each computes is irc.library_calls' (the interpreter's definition); these
# read its operands and properties from the schedule's JSON


def _cl(p: Mapping) -> bool:
    return bool(p.get("channels_last"))


def _attention(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    return lib.attention(a[0], a[1], a[2], a[3] if len(a) > 3 else None,
                         bool(p.get("is_causal")), p["scale"])


def _conv(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    y = lib.conv(lib.from_channels_last(a[0], _cl(p)), a[1], a[2] if len(a) > 2 else None,
                 p["stride"], p["padding"], p["dilation"], p["groups"])
    return lib.to_channels_last(y, _cl(p))


def _conv_epilogue(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    """``unary(conv(x, w, b) + other)``, channels-last in and out."""
    bias = a[2] if p["has_bias"] else None
    other = a[2 + int(p["has_bias"])] if p["has_other"] else None
    return lib.conv_epilogue(a[0], a[1], bias, other, p["stride"], p["padding"], p["dilation"],
                             p["groups"], p["unary"], list(p.get("unary_scalars") or []))


def _max_pool(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    k = p["kernel"]
    y = lib.max_pool(lib.from_channels_last(a[0], _cl(p)), k, p["stride"], p["padding"],
                     p.get("dilation") or [1] * len(k), bool(p.get("ceil_mode")))
    return lib.to_channels_last(y, _cl(p))


def _avg_pool(p: Mapping, a: list[torch.Tensor], out: Spec) -> torch.Tensor:
    y = lib.avg_pool(lib.from_channels_last(a[0], _cl(p)), p["kernel"], p["stride"], p["padding"],
                     bool(p.get("ceil_mode")), bool(p.get("count_include_pad", True)),
                     p.get("divisor"))
    return lib.to_channels_last(y, _cl(p))


LIBRARY: dict[str, Callable[[Mapping, list[torch.Tensor], Spec], torch.Tensor]] = {
    "graph.attention": _attention,
    "graph.conv": _conv,
    "graph.conv_epilogue": _conv_epilogue,
    "graph.max_pool": _max_pool,
    "graph.avg_pool": _avg_pool,
    "graph.adaptive_avg_pool": lambda p, a, o: lib.adaptive_avg_pool(a[0], o.shape),
    "graph.matmul": lambda p, a, o: torch.matmul(a[0], a[1]),
    "graph.concat": lambda p, a, o: torch.cat(a, dim=p["dim"]),
    "graph.gather": lambda p, a, o: torch.gather(a[0], p["dim"], a[1].to(torch.int64)),
    "graph.index_select": lambda p, a, o: torch.index_select(a[0], p["dim"], a[1].to(torch.int64)),
    "graph.embedding": lambda p, a, o: F.embedding(a[1].to(torch.int64), a[0]),
}
"""Library calls by graph op name: (properties, operands, result spec) -> result."""


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
            largest = max((self.specs[v].shape.numel() for v in s["out"]), default=1)
            run = self._parallel(s["kernel"], fn, trip, n,
                                 min_iterations(trip, largest, OPENMP_MIN_WORK))

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
        threads = self.threads

        def launch(a: list) -> None:
            chunks = chunk_count(most, threads)
            if chunks <= 1:
                fn(*a, 0, trip)
            else:
                omp(*a, 0, trip, chunks)
        return launch

    def _view(self, s: Mapping) -> Step:
        src, out = s["in"][0], s["out"][0]
        steps = s["steps"]

        if src in self.fixed:  # a view of a planned buffer or constant: made once
            view = lib.planned_view(self.fixed[src], steps)
            if view is not None:
                self.fixed[out] = view
                return lambda env: None

        def step(env: Env) -> None:
            env[out] = lib.apply_view(env[src], steps)
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
        try:
            lib.aten_overload(callee)
        except IrcError as err:  # a package made by a torch with operators this one lacks
            raise PackageError(str(err)) from None

        def step(env: Env) -> None:
            for slot, t in zip(outs, lib.run_aten_call(callee, args, dtypes, [env[i] for i in ins])):
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
