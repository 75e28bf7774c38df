"""Compile-time work of the CPU backend: kernels deduplicated, cached one by one,
compiled in worker processes; and the phase breakdown of bench/compile_time.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from irc.backends.llvm import jit
from irc.cache import CacheConfig, open_cache
from irc.errors import BackendError

KERNEL = ("define void @{name}(float* noalias %p) {{\n"
          "  store float {value}, float* %p\n  ret void\n}}\n")


def canonical(value: float) -> str:
    return KERNEL.format(name=jit.CANONICAL_NAME, value=f"{value:.1f}")


def run(module: jit.JitModule, name: str) -> float:
    out = torch.zeros(1)
    module.function(name, 1)(out.data_ptr())
    return out.item()


def test_identical_kernels_compile_once(monkeypatch):
    emitted = []
    real = jit.emit_object
    monkeypatch.setattr(jit, "emit_object", lambda text: emitted.append(text) or real(text))
    texts = {"kernel_0": canonical(1.0), "kernel_1": canonical(2.0), "kernel_2": canonical(1.0)}
    module = jit.compile_kernels(texts)
    assert len(emitted) == 2
    assert module.aliases["kernel_0"] == module.aliases["kernel_2"] != module.aliases["kernel_1"]
    assert [run(module, k) for k in texts] == [1.0, 2.0, 1.0]


def test_object_code_is_cached_per_kernel(tmp_path, monkeypatch):
    store = open_cache(CacheConfig(dir=str(tmp_path)))
    jit.compile_kernels({"a": canonical(1.0), "b": canonical(2.0)}, store, ("k",))
    assert store.info().entries == 2
    emitted = []
    real = jit.emit_object
    monkeypatch.setattr(jit, "emit_object", lambda text: emitted.append(text) or real(text))
    # another model: one kernel seen before (under another name), one new
    module = jit.compile_kernels({"x": canonical(2.0), "y": canonical(3.0)}, store, ("k",))
    assert len(emitted) == 1 and "3.0" in emitted[0]
    assert run(module, "x") == 2.0 and run(module, "y") == 3.0
    # other key parts (another CPU, irc version, ...) never reuse an entry
    jit.compile_kernels({"x": canonical(2.0)}, store, ("other",))
    assert len(emitted) == 2


def test_workers_compile_a_share_each(monkeypatch):
    emitted = []
    real = jit.emit_object
    monkeypatch.setattr(jit, "emit_object", lambda text: emitted.append(text) or real(text))
    texts = {f"kernel_{i}": canonical(float(i)) for i in range(8)}
    module = jit.compile_kernels(texts, workers=2, min_parallel=8)
    assert len(emitted) == 4, "this process compiles its half, a worker the other"
    assert [run(module, k) for k in texts] == [float(i) for i in range(8)]


def test_a_failing_worker_share_is_compiled_here_with_a_clear_error():
    texts = {f"kernel_{i}": canonical(float(i)) for i in range(8)}
    texts["kernel_7"] = "define void @" + jit.CANONICAL_NAME + "( {"  # invalid LLVM IR
    with pytest.raises(BackendError, match="invalid LLVM IR"):
        jit.compile_kernels(texts, workers=2, min_parallel=8)


def test_layers_share_kernels_end_to_end():
    import irc.backends.llvm.backend as backend
    from irc.driver import compile_program
    from irc.frontends.capture import export_program

    torch.manual_seed(0)
    layer = lambda: torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.GELU(),  # noqa: E731
                                        torch.nn.LayerNorm(16))
    model = torch.nn.Sequential(layer(), layer(), layer(), layer()).eval()
    x = torch.randn(4, 16)
    exe = compile_program(export_program(model, (x,)), "cpu", {"cache": {"enabled": False}})
    torch.testing.assert_close(exe(x)[0], model(x), rtol=1e-5, atol=1e-5)
    aliases = exe.program.jit.aliases
    assert len(aliases) == exe.kernel_count
    assert len(set(aliases.values())) < len(aliases), "the two layers' kernels are the same code"
    assert isinstance(backend.LLVMOptions().compile_workers, int)
    with pytest.raises(ValueError):
        backend.LLVMOptions(compile_workers=-1)


def test_phase_breakdown_adds_up():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.compile_time import phases
    result = phases("softmax_4096") if _has_workload("softmax_4096") else phases(_any_workload())
    parts = [v for k, v in result.items() if k != "total"]
    assert all(v >= 0 for v in parts if v is not None), result
    assert result["total"] > 0
    # the phases are disjoint parts of the compile (irc's own glue is in none of them)
    compile_part = result["total"] - result["first_run"]
    assert sum(v for k, v in result.items() if k not in ("total", "first_run")) \
        <= compile_part * 1.05 + 0.05
    assert result["dynamo"] + result["aot"] <= compile_part * 1.05 + 0.05


def _has_workload(name: str) -> bool:
    from bench.workloads import WORKLOADS
    return name in WORKLOADS


def _any_workload() -> str:
    from bench.workloads import WORKLOADS
    return next(n for n, w in WORKLOADS.items() if w.kind != "model")


def test_training_step_phases_add_up():
    """bench/train_compile_time.py: the cold training step of the zoo's GPT-2
    by phase; a forward and a backward graph, each phase non-negative, the
    parts no more than the whole."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.train_compile_time import profile
    result = profile("gpt2", {"cache": {"enabled": False}}, cpu=True)
    assert [g["graph"] for g in result["graphs"]] == ["fw", "bw"]
    phases = ["dynamo", "aot_joint", "aot_partition", "aot_other", "import", "passes", "translate",
              "llvm", "backend", "irc_other", "fw_run", "bw_run"]
    assert all(result[k] >= -0.01 for k in phases), result
    assert sum(result[k] for k in phases) == pytest.approx(result["first_step_s"], abs=0.05)
    assert result["llvm"] > 0 and result["passes"] > 0 and result["import"] > 0
    assert {"lower-to-loops", "fuse"} <= set(result["per_pass"])


def test_compiling_leaves_the_garbage_collector_as_it_was():
    """The collector is off while a graph compiles (frontends.capture.gc_paused)
    and on again after, also when the compile fails; off stays off."""
    import gc

    import irc
    from irc.frontends.capture import gc_paused
    states = []
    with gc_paused():
        states.append(gc.isenabled())
    assert states == [False] and gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    fn = irc.compile(lambda x: (x * 2).sin(), strict=True)
    x = torch.randn(5, requires_grad=True)
    fn(x).sum().backward()
    assert gc.isenabled()
    torch.testing.assert_close(x.grad, 2 * (2 * x.detach()).cos())
