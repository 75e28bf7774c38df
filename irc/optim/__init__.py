"""A compiled optimizer step: ``irc.optim.compile_step(optimizer)``, also
reached as ``irc.compile(optimizer.step)``.

    step = irc.optim.compile_step(torch.optim.AdamW(model.parameters(), lr=1e-3))
    loss.backward(); step(); step.optimizer.zero_grad()

What is fused, and how: per parameter group (and, inside a group, per step
count and, for SGD, per "momentum buffer exists yet"), ONE kernel launch
updates every parameter that has a gradient. The kernel walks a table of the
parameters' addresses; for each element it reads the parameter, its gradient
and its state (Adam: ``exp_avg``, ``exp_avg_sq``; SGD: ``momentum_buffer``)
once, evaluates the whole update (weight decay, moments, bias correction,
the step) in registers, and writes parameter and state back in place (Adam's
``state["step"]`` counters are advanced by the same launch; the written
tensors' version counters are bumped after it). That is
one pass over each parameter's memory, where torch.optim's ``foreach`` step
makes about ten (one per ``_foreach_*`` op) and its single-tensor step
launches about ten kernels per parameter. The update rules (:mod:`.rules`)
follow torch.optim's arithmetic operation by operation, so results agree
within float32 rounding. Targets: ``"cpu"`` (native code through irc's LLVM
JIT, :mod:`.cpu`) and ``"cuda"`` (Triton, :mod:`.triton`; Triton's
interpreter on CPU tensors under ``TRITON_INTERPRET=1``).

The optimizer keeps its own state dict: the compiled step creates state
exactly as torch.optim does (``step`` as a float32 tensor, moments as
``zeros_like``), so ``optimizer.step()``, ``state_dict()`` and
``load_state_dict()`` stay interchangeable with it, and hyperparameters
(``lr`` from a scheduler too) are read from the param groups at every call.
Supported: ``SGD`` (momentum, dampening, nesterov, weight decay, maximize),
``Adam`` and ``AdamW`` (weight decay, maximize), on dense contiguous float32
parameters and gradients; anything else is an :class:`irc.IrcError` naming
the option.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.graph import increment_version

from irc.errors import IrcError
from irc.optim.rules import Rule, adam_rule, sgd_rule

__all__ = ["CompiledStep", "compile_step", "is_optimizer_step"]

_TARGETS = ("cpu", "cuda")


def is_optimizer_step(obj: Any) -> bool:
    """Whether ``obj`` is the bound ``step`` of a ``torch.optim.Optimizer``."""
    return isinstance(getattr(obj, "__self__", None), torch.optim.Optimizer) and \
        getattr(obj, "__name__", None) == "step"


def compile_step(optimizer: torch.optim.Optimizer, target: str = "cpu",
                 interpret: bool | None = None) -> CompiledStep:
    """``optimizer``'s step as fused multi-tensor kernels for ``target``
    (module docstring). ``interpret`` (``target="cuda"``): run Triton's CPU
    interpreter; default: whether ``TRITON_INTERPRET=1`` is set."""
    if target not in _TARGETS:
        raise IrcError(f"irc.optim.compile_step: target must be one of {_TARGETS}, got {target!r}")
    if type(optimizer) not in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
        raise IrcError("irc.optim.compile_step supports torch.optim.SGD, Adam and AdamW, "
                       f"got {type(optimizer).__name__}")
    if target == "cuda" and interpret is None:
        from irc.backends.triton.runtime import interpreter_enabled
        interpret = interpreter_enabled()
    step = CompiledStep(optimizer, target, bool(interpret))
    for group in optimizer.param_groups:
        step.rule_for(group)  # unsupported options fail now, not at the first step
    return step


def _grad(p: torch.Tensor) -> torch.Tensor:
    """``p.grad`` of a parameter :meth:`CompiledStep._params` kept (it has one)."""
    assert p.grad is not None
    return p.grad


class CompiledStep:
    """Callable like ``optimizer.step(closure=None)``; updates in place."""

    def __init__(self, optimizer: torch.optim.Optimizer, target: str, interpret: bool) -> None:
        self.optimizer = optimizer
        self.target = target
        self.interpret = interpret
        self.launches = 0  # kernel launches so far (what the tests and bench count)
        # id(param) -> (Adam step count, version of state["step"] when it was read):
        # the count is re-read when anything else stepped the tensor
        self._steps: dict[int, tuple[int, int]] = {}
        self._checked: set[tuple[int, int]] = set()  # (id, data_ptr) of parameters whose checks passed
        self._block_tables: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def is_adam(self) -> bool:
        return isinstance(self.optimizer, torch.optim.Adam)

    def rule_for(self, group: dict[str, Any]) -> Rule:
        """The fused rule of one param group (its static flags), or an IrcError."""
        name = type(self.optimizer).__name__
        for flag in ("amsgrad", "differentiable", "capturable", "nesterov_momentum"):
            if group.get(flag):
                raise IrcError(f"irc.optim.compile_step: {name}({flag}=True) is not supported")
        if isinstance(group["lr"], torch.Tensor) and group["lr"].numel() != 1:
            raise IrcError(f"irc.optim.compile_step: {name} lr must be a number")
        maximize = bool(group.get("maximize", False))
        if self.is_adam:
            beta1, _ = group["betas"]
            decoupled = bool(group.get("decoupled_weight_decay", isinstance(self.optimizer, torch.optim.AdamW)))
            return adam_rule(decoupled, group["weight_decay"] != 0, maximize, 1 - float(beta1) >= 0.5)
        return sgd_rule(group["momentum"] != 0, group["weight_decay"] != 0, bool(group["nesterov"]), maximize)

    def __call__(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        self.optimizer._opt_called = True  # type: ignore[attr-defined]  # what LR schedulers check
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.optimizer.param_groups:
                self._step_group(group)
        return loss

    # ------------------------------------------------------------------

    def _params(self, group: dict[str, Any]) -> list[torch.Tensor]:
        """The group's parameters that have a gradient, checked (a parameter's
        own checks are remembered by its identity and storage address)."""
        params = []
        want = "cuda" if self.target == "cuda" and not self.interpret else "cpu"
        for index, p in enumerate(group["params"]):
            g = p.grad
            if g is None:
                continue
            key = (id(p), p.data_ptr())
            if key not in self._checked:
                if p.dtype != torch.float32:
                    raise IrcError(f"irc.optim.compile_step: parameter {index} is {p.dtype}; "
                                   "the fused step supports float32")
                if not p.is_contiguous():
                    raise IrcError(f"irc.optim.compile_step: parameter {index} is not contiguous")
                if p.device.type != want:
                    raise IrcError(f"irc.optim.compile_step: parameter {index} is on {p.device}, "
                                   f"target {self.target!r} needs {want} tensors")
                self._checked.add(key)
            if g.is_sparse or g.dtype != torch.float32 or not g.is_contiguous():
                raise IrcError(f"irc.optim.compile_step: parameter {index}'s gradient is "
                               f"{'sparse' if g.is_sparse else g.dtype}"
                               f"{'' if g.is_contiguous() else ', not contiguous'}; "
                               "the fused step needs dense contiguous float32 gradients")
            params.append(p)
        return params

    def _step_group(self, group: dict[str, Any]) -> None:
        rule = self.rule_for(group)
        params = self._params(group)
        if not params:
            return
        lr = float(group["lr"])
        state = self.optimizer.state
        if self.is_adam:
            by_step: dict[int, list[list[torch.Tensor]]] = {}
            for p in params:
                st = state[p]
                if len(st) == 0:
                    st["step"] = torch.tensor(0.0, dtype=torch.float32)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                step_t = st["step"]
                count, version = self._steps.get(id(p), (0, -1))
                if version != step_t._version:  # new, or stepped by torch.optim / loaded since
                    count = int(step_t)
                by_step.setdefault(count + 1, []).append([p, _grad(p), st["exp_avg"], st["exp_avg_sq"], step_t])
            beta1, beta2 = (float(b) for b in group["betas"])
            wd = float(group["weight_decay"])
            for step, rows in by_step.items():
                bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
                values = {"wd": wd, "decay": 1 - lr * wd, "w1": 1 - beta1, "omw": beta1, "b2": beta2,
                          "omb2": 1 - beta2, "bc2s": bc2 ** 0.5, "eps": float(group["eps"]),
                          "neg_step": -(lr / bc1)}
                self._launch(rule, rows, [values[n] for n in rule.scalars])
                for row in rows:  # the kernel advanced state["step"] (its version was bumped with it)
                    self._steps[id(row[0])] = (step, row[4]._version)
            return
        momentum = float(group["momentum"])
        values = {"wd": float(group["weight_decay"]), "mom": momentum, "omd": 1 - float(group["dampening"]),
                  "neg_lr": -lr}
        if momentum == 0:
            self._launch(rule, [[p, _grad(p)] for p in params], [values[n] for n in rule.scalars])
            return
        fresh, old = [], []
        for p in params:
            st = state[p]
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = torch.empty_like(p, memory_format=torch.preserve_format)
                fresh.append([p, _grad(p), buf])
            else:
                old.append([p, _grad(p), buf])
        for first, rows in ((1.0, fresh), (0.0, old)):
            if rows:
                values["first"] = first
                self._launch(rule, rows, [values[n] for n in rule.scalars])

    def _launch(self, rule: Rule, rows: list[list[torch.Tensor]], scalars: list[float]) -> None:
        """One kernel launch over ``rows`` (per tensor: its buffers in
        ``rule.reads`` order, then its step counter if the rule counts steps)."""
        nbuf = len(rule.reads)
        for row in rows:
            for b in row[2:nbuf]:
                if b.shape != row[0].shape or not b.is_contiguous() or b.dtype != torch.float32:
                    raise IrcError("irc.optim.compile_step: optimizer state is not a contiguous float32 "
                                   "tensor of its parameter's shape")
        device = rows[0][0].device
        columns = list(zip(*rows))
        tables = [torch.tensor([t.data_ptr() for t in column], dtype=torch.int64) for column in columns]
        sizes_list = [p.numel() for p in columns[0]]
        sizes = torch.tensor(sizes_list, dtype=torch.int64)
        scalar_t = torch.tensor(scalars, dtype=torch.float32)
        self.launches += 1
        if self.target == "cpu":
            from irc.optim.cpu import cpu_kernel
            cpu_kernel(rule)(len(rows), sizes.data_ptr(), *(t.data_ptr() for t in tables), scalar_t.data_ptr())
        else:
            from irc.optim.triton import BLOCK, INTERPRETER_BLOCK, triton_kernel
            block = INTERPRETER_BLOCK if self.interpret else BLOCK
            blk_tensor, blk_off = self._blocks((block, *sizes_list), block, device)
            triton_kernel(rule, self.interpret)[(blk_tensor.numel(),)](
                sizes.to(device), blk_tensor, blk_off, *(t.to(device) for t in tables), scalar_t.to(device),
                BLOCK=block)
        # written behind autograd's back: tell version-keyed caches (autograd, irc's weight caches)
        written = [i for i, name in enumerate(rule.reads) if name in rule.writes]
        increment_version([t for i in written for t in columns[i]]
                          + (list(columns[nbuf]) if rule.counts_steps else []))

    def _blocks(self, sizes: tuple[int, ...], block: int, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per program: which tensor, which block of it (cached per block size and
        parameter sizes, ``sizes = (block, n_0, n_1, ...)``)."""
        cached = self._block_tables.get(sizes)
        if cached is None:
            # at least one block per tensor: an empty one still advances its step counter
            counts = torch.tensor([max(1, -(-n // block)) for n in sizes[1:]], dtype=torch.int64)
            tensor_ids = torch.repeat_interleave(torch.arange(len(sizes) - 1, dtype=torch.int32), counts)
            starts = torch.cumsum(counts, 0) - counts
            offsets = (torch.arange(int(counts.sum())) - torch.repeat_interleave(starts, counts)).to(torch.int32)
            cached = (tensor_ids.to(device), offsets.to(device))
            self._block_tables[sizes] = cached
        return cached
