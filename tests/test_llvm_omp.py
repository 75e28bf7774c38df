"""Parallel CPU kernels on torch's OpenMP team (irc.backends.llvm.threads).

A parallel kernel's ``.omp`` entry runs ``[lo, hi)`` in one ``GOMP_parallel``
region; these tests check that every iteration runs exactly once for any team
size, that compiled models take the OpenMP path where torch runs on OpenMP,
and that ``IRC_CPU_OPENMP=0`` and ``torch.set_num_threads(1)`` change how a
launch runs but never what it computes.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

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
    if os.environ.get(threads.OPENMP_ENV, "1") == "0":
        assert found is None
    else:
        assert (found is not None) == uses_openmp
    if found is not None:
        assert os.path.basename(found.path).startswith(("libgomp", "libiomp5", "libomp"))
        assert found.parallel and found.thread_num and found.num_threads


def _launcher_counts(fn_launch, args: list[int]) -> dict[str, int]:
    before = dict(threads.launches)
    fn_launch(args)
    return {k: threads.launches[k] - before.get(k, 0) for k in threads.launches}


def test_parallel_launcher_paths_agree() -> None:
    n = 4096
    module = jit.compile_llvm_ir(translate_module(parse(COUNT.format(n=n))))
    plain, omp = module.function("k", 1, parallel=True), module.omp_function("k", 1)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        results = {}
        for name, launch in {
            "omp": threads.parallel_launcher(plain, omp, n, min_work=1),
            "pool": threads.parallel_launcher(plain, None, n, min_work=1),
            "small": threads.parallel_launcher(plain, omp, n, min_work=n),  # one chunk: serial
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
        counts = _launcher_counts(threads.parallel_launcher(plain, omp, n, min_work=1),
                                  [o.data_ptr()])
        assert counts.get("serial") == 1 and torch.equal(o, expected)
    finally:
        torch.set_num_threads(old)


SCRIPT = """
import torch, irc
from irc.backends.llvm import threads
torch.manual_seed(0)
x = torch.randn(2048, 1024)  # 2M elements: worth two threads
f = irc.compile(lambda x: torch.softmax(x * 2.0 + 1.0, -1), target="cpu")
torch.testing.assert_close(f(x), torch.softmax(x * 2.0 + 1.0, -1))
print(dict(threads.launches))
"""


@pytest.mark.parametrize("setting", ["1", "0"])
def test_compiled_model_uses_the_selected_runtime(setting: str, tmp_path) -> None:
    env = {**os.environ, threads.OPENMP_ENV: setting, "IRC_CACHE_DIR": str(tmp_path),
           "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    counts = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    if (os.cpu_count() or 1) < 2:
        assert counts.get("serial", 0) >= 1
    elif setting == "0":
        assert counts.get("pool", 0) >= 1 and counts.get("openmp", 0) == 0
    elif "parallel backend: OpenMP" in torch.__config__.parallel_info():
        assert counts.get("openmp", 0) >= 1 and counts.get("pool", 0) == 0
    else:  # torch without OpenMP: irc's pool either way
        assert counts.get("pool", 0) >= 1 and counts.get("openmp", 0) == 0
