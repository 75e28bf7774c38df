"""Parallel CPU kernels on torch's OpenMP team (irc.backends.llvm.threads).

A parallel kernel's ``.omp`` entry runs ``[lo, hi)`` in one ``GOMP_parallel``
region; these tests check that every iteration runs exactly once for any team
size, that compiled models take the OpenMP path where torch runs on OpenMP,
and that the option ``parallel_runtime="pool"`` and ``torch.set_num_threads(1)``
change how a launch runs (counted in ``executable.stats``) but never what it
computes.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.backends.llvm import jit, threads
from irc.backends.llvm.translate import OMP_SUFFIX, translate_module
from test_llvm_jit import STRIDED, parse

# o[i] += i + 1 for every iteration: an iteration run twice (or not at all) shows
COUNT = """
func.func @k(%o: memref<{n}xi64>) {{
  %c0 = arith.constant 0 : index
  %cn = arith.constant {n} : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %cn step %c1 {{
    %v = arith.index_cast %i : index to i64
    %one = arith.constant 1 : i64
    %w = arith.addi %v, %one : i64
    %old = memref.load %o[%i] : memref<{n}xi64>
    %new = arith.addi %old, %w : i64
    memref.store %new, %o[%i] : memref<{n}xi64>
  }} {{irc.parallel}}
  func.return
}}
"""


def test_translate_emits_an_omp_entry_for_parallel_kernels_only() -> None:
    text = translate_module(parse(COUNT.format(n=8)))
    assert f'define void @"k{OMP_SUFFIX}"' in text or f"define void @k{OMP_SUFFIX}" in text
    assert "__irc_GOMP_parallel" in text
    serial = translate_module(parse(COUNT.format(n=8).replace(" {irc.parallel}", "")))
    assert OMP_SUFFIX not in serial and "GOMP" not in serial


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 300), lo=st.integers(0, 40), span=st.integers(0, 300),
       team=st.integers(1, 9))
def test_omp_entry_runs_each_iteration_once(n: int, lo: int, span: int, team: int) -> None:
    fn = jit.compile_llvm_ir(translate_module(parse(COUNT.format(n=n)))).omp_function("k", 1)
    o = torch.zeros(n, dtype=torch.int64)
    hi = lo + span
    fn(o.data_ptr(), lo, hi, team)
    ref = torch.zeros(n, dtype=torch.int64)
    ran = torch.arange(n)
    inside = (ran >= lo) & (ran < min(hi, n))
    ref[inside] = ran[inside] + 1
    assert torch.equal(o, ref)


def test_omp_entry_of_a_strided_loop() -> None:
    fn = jit.compile_llvm_ir(translate_module(parse(STRIDED))).omp_function("k", 1)
    o = torch.full((100,), -1, dtype=torch.int64)
    fn(o.data_ptr(), 0, 14, 3)  # 14 iterations: iv 3, 10, ..., 94
    ref = torch.full((100,), -1, dtype=torch.int64)
    ref[3:100:7] = torch.arange(3, 100, 7)
    assert torch.equal(o, ref)


def test_runtime_found_where_torch_runs_on_openmp() -> None:
    uses_openmp = "parallel backend: OpenMP" in torch.__config__.parallel_info()
    found = threads.detect_openmp()
    assert (found is not None) == uses_openmp
    if found is not None:
        assert os.path.basename(found.path).startswith(("libgomp", "libiomp5", "libomp"))
        assert found.parallel and found.thread_num and found.num_threads


def _launcher_counts(make_launch, args: list[int]) -> dict[str, int]:
    stats = threads.LaunchStats()
    make_launch(stats)(args)
    return dict(stats.launches)


def test_parallel_launcher_paths_agree() -> None:
    n = 4096
    module = jit.compile_llvm_ir(translate_module(parse(COUNT.format(n=n))))
    plain, omp = module.function("k", 1, parallel=True), module.omp_function("k", 1)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        results = {}
        for name, launch in {
            "omp": lambda s: threads.parallel_launcher(plain, omp, n, min_work=1, stats=s),
            "pool": lambda s: threads.parallel_launcher(plain, None, n, min_work=1, stats=s),
            # one chunk: serial
            "small": lambda s: threads.parallel_launcher(plain, omp, n, min_work=n, stats=s),
        }.items():
            o = torch.zeros(n, dtype=torch.int64)
            counts = _launcher_counts(launch, [o.data_ptr()])
            results[name] = (o, counts)
        expected = torch.arange(1, n + 1)
        for name, (o, _) in results.items():
            assert torch.equal(o, expected), name
        assert results["small"][1].get("serial") == 1
        if threads.num_threads() >= 2:
            assert results["pool"][1].get("pool") == 1
            if threads.detect_openmp() is not None:
                assert results["omp"][1].get("openmp") == 1
        torch.set_num_threads(1)  # read on every call: now serial
        o = torch.zeros(n, dtype=torch.int64)
        counts = _launcher_counts(
            lambda s: threads.parallel_launcher(plain, omp, n, min_work=1, stats=s), [o.data_ptr()])
        assert counts.get("serial") == 1 and torch.equal(o, expected)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("runtime", ["openmp", "pool"])
def test_compiled_model_uses_the_selected_runtime(runtime: str, tmp_path) -> None:
    from irc.driver import compile_program
    from irc.frontends.capture import export_program

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x * 2.0 + 1.0, -1)

    x = torch.randn(2048, 1024)  # 2M elements: worth two threads
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        run = compile_program(export_program(fn, [x]), "cpu",
                              {"parallel_runtime": runtime, "cache.dir": str(tmp_path)})
        torch.testing.assert_close(run(x)[0], fn(x))
    finally:
        torch.set_num_threads(old)
    counts = run.stats.launches
    if (os.cpu_count() or 1) < 2:
        assert counts["serial"] >= 1
    elif runtime == "pool" or threads.detect_openmp() is None:
        assert counts["pool"] >= 1 and counts["openmp"] == 0
    else:
        assert counts["openmp"] >= 1 and counts["pool"] == 0
