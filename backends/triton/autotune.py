"""Tiling decisions for generated Triton kernels, and a small autotuner.

*Deciding* lives here; *emitting* source lives in :mod:`codegen`. A kernel is
either **pointwise** (one flattened output index per lane: ``XBLOCK`` lanes per
program) or a **reduction** (``XBLOCK`` rows of the kept dims per program times
``RBLOCK`` lanes of the reduced dims). A reduction whose reduced extent fits in
one block is *persistent* (the row is loaded once, reduced, normalised and
stored); otherwise it loops over the reduced extent in ``RBLOCK`` chunks.

Block sizes are powers of two picked from the static shapes. On a real GPU,
:class:`Autotuner` times a few neighbouring configurations of large kernels
with ``triton.testing.do_bench`` on first use and keeps the winner per
(kernel source, shape) in-process and, when :mod:`irc.cache` exists, on disk.
Under ``TRITON_INTERPRET=1`` nothing is timed and blocks are larger (fewer
programs is what makes the interpreter fast).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

# Largest row (reduced extent) kept whole in one block on a GPU / in the interpreter.
PERSISTENT_LIMIT_GPU = 4096
PERSISTENT_LIMIT_INTERPRET = 16384
# Largest block of lanes per program.
MAX_BLOCK_GPU = 1024
MAX_BLOCK_INTERPRET = 16384
# Kernels touching fewer elements are not worth timing.
AUTOTUNE_MIN_ELEMENTS = 1 << 18


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


@dataclass(frozen=True)
class Tiling:
    """How one Triton kernel is launched: ``grid = cdiv(extent, xblock)``."""

    kind: str  # "pointwise" | "reduction"
    extent: int  # elements (pointwise) or rows (reduction) covered by the grid
    reduced: int  # reduced elements per row (0 for pointwise)
    xblock: int
    rblock: int
    num_warps: int

    @property
    def persistent(self) -> bool:
        return self.kind == "reduction" and self.rblock >= self.reduced

    @property
    def grid(self) -> int:
        return max(1, -(-self.extent // self.xblock))

    def meta(self) -> dict[str, int]:
        """Launch keywords: the constexpr block sizes and ``num_warps``."""
        out = {"XBLOCK": self.xblock, "num_warps": self.num_warps}
        if self.kind == "reduction":
            out["RBLOCK"] = self.rblock
        return out


def _warps(elements: int) -> int:
    return max(1, min(16 if elements >= 8192 else 8, elements // 256))


def choose_pointwise(numel: int, interpret: bool) -> Tiling:
    """One lane per output element."""
    cap = MAX_BLOCK_INTERPRET if interpret else MAX_BLOCK_GPU
    xblock = min(next_pow2(numel), cap)
    return Tiling("pointwise", numel, 0, xblock, 0, _warps(xblock))


def choose_reduction(rows: int, reduced: int, interpret: bool) -> Tiling:
    """``rows`` independent reductions of ``reduced`` elements each."""
    limit = PERSISTENT_LIMIT_INTERPRET if interpret else PERSISTENT_LIMIT_GPU
    cap = MAX_BLOCK_INTERPRET if interpret else MAX_BLOCK_GPU
    if next_pow2(reduced) <= limit:
        rblock = next_pow2(reduced)
        xblock = max(1, min(next_pow2(rows), cap // rblock))
    else:
        rblock = 4096 if interpret else 1024
        xblock = 1
    return Tiling("reduction", rows, reduced, xblock, rblock, _warps(xblock * rblock))


def candidates(t: Tiling) -> list[Tiling]:
    """Neighbouring configurations worth timing (same persistence: the source
    differs between persistent and looped reductions)."""
    out = [t]
    for warps in (t.num_warps // 2, t.num_warps * 2):
        if 1 <= warps <= 16:
            out.append(replace(t, num_warps=warps))
    if t.kind == "pointwise":
        for xb in (t.xblock // 2, t.xblock * 2):
            if 64 <= xb <= 4096 and xb <= next_pow2(t.extent):
                out.append(replace(t, xblock=xb, num_warps=_warps(xb)))
    elif t.persistent:
        for xb in (t.xblock // 2, t.xblock * 2):
            if 1 <= xb <= next_pow2(t.extent) and xb * t.rblock <= 8192:
                out.append(replace(t, xblock=xb, num_warps=_warps(xb * t.rblock)))
    else:
        for rb in (t.rblock // 2, t.rblock * 2):
            if 128 <= rb <= 4096:
                out.append(replace(t, rblock=rb, num_warps=_warps(rb)))
    return list(dict.fromkeys(out))


def worth_tuning(t: Tiling) -> bool:
    return t.extent * max(t.reduced, 1) >= AUTOTUNE_MIN_ELEMENTS


class Autotuner:
    """Chooses among :func:`candidates` by timing; remembers choices."""

    def __init__(self) -> None:
        self._memory: dict[str, Any] = {}  # key -> JSON value (a tiling's fields, a name)

    @staticmethod
    def key(source: str, kernel: str, t: object, device: str) -> str:
        # 64 hex digits: the form irc.cache keys take
        return hashlib.sha256(f"triton-tiling|{source}|{kernel}|{t}|{device}".encode()).hexdigest()

    def recall(self, key: str) -> Any:
        """A remembered JSON value (in memory, else from the disk cache), or None."""
        if key in self._memory:
            return self._memory[key]
        cache = _disk_cache()
        if cache is None:
            return None
        try:
            data = cache.get(key)
        except Exception:  # a broken entry is rebuilt, never trusted
            return None
        if not data:
            return None
        try:
            value = json.loads(data)
        except ValueError:
            return None
        self._memory[key] = value
        return value

    def remember(self, key: str, value: Any) -> None:
        """Keep a JSON value in memory and, when the cache is on, on disk."""
        self._memory[key] = value
        cache = _disk_cache()
        if cache is not None:
            try:
                cache.put(key, json.dumps(value).encode())
            except Exception:  # disk cache is an optimisation only
                pass

    def lookup(self, key: str) -> Tiling | None:
        data = self.recall(key)
        if not isinstance(data, dict):
            return None
        try:
            return Tiling(**data)
        except TypeError:
            return None

    def store(self, key: str, t: Tiling) -> None:
        self.remember(key, asdict(t))

    def pick(self, key: str, options: Mapping[str, Callable[[], object]]) -> str:
        """The fastest of named alternatives (each callable runs one launch),
        remembered under ``key``; used for matmul tilings and for the
        library-vs-template choice (:mod:`codegen_matmul`)."""
        known = self.recall(key)
        if isinstance(known, str) and known in options:
            return known
        best = _fastest(options)
        self.remember(key, best)
        return best

    def tune(self, key: str, t: Tiling, run: Callable[[Tiling], None]) -> Tiling:
        """The fastest of ``candidates(t)``; ``run(tiling)`` launches once."""
        known = self.lookup(key)
        if known is not None:
            return known
        cands = candidates(t)
        best = cands[int(_fastest({str(i): (lambda c=c: run(c)) for i, c in enumerate(cands)}))]
        self.store(key, best)
        return best


def _fastest(options: Mapping[str, Callable[[], object]]) -> str:
    """The name of the fastest option (``do_bench`` of each; one that fails, e.g.
    out of shared memory or registers, is skipped; the first when all fail)."""
    from triton.testing import do_bench
    best, best_ms = next(iter(options)), float("inf")
    for name, run in options.items():
        try:
            ms = do_bench(run, warmup=5, rep=20)
        except Exception:
            continue
        if not isinstance(ms, float):  # one time (the default return mode)
            continue
        if ms < best_ms:
            best, best_ms = name, ms
    return best


def _disk_cache():  # type: ignore[no-untyped-def]
    """irc's on-disk compile cache (None when disabled or unavailable)."""
    try:
        from irc.cache import open_cache
        return open_cache()
    except Exception:  # the cache is an optimisation; never fail a launch over it
        return None


AUTOTUNER = Autotuner()
