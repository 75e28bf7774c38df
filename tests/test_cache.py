"""The compile cache: round trips, atomic concurrent writes, rejection of
corrupt/truncated/foreign entries (which the caller then rebuilds), and that
no payload is ever unpickled."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
from pathlib import Path

import pytest

from irc.cache import CacheConfig, CompileCache, default_cache_dir, make_key, open_cache
from irc.cli import main as irc_main
from irc.errors import CacheError


@pytest.fixture
def cache(tmp_path: Path) -> CompileCache:
    return CompileCache(tmp_path / "cache")


def _entry_path(cache: CompileCache, key: str) -> Path:
    paths = list(cache.dir.glob(f"*/{key}*"))
    assert len(paths) == 1, paths
    return paths[0]


def get_or_build(cache: CompileCache, key: str, build: list[int]) -> bytes:
    """What a backend does: use the cached artefact, else build and store it."""
    data = cache.get(key)
    if data is None:
        build.append(1)
        data = b"object code for " + key.encode()
        cache.put(key, data)
    return data


def test_round_trip_and_miss(cache: CompileCache) -> None:
    key = make_key("module {}", "cpu", "+avx2", "0.1.0", "19.1")
    assert cache.get(key) is None
    payload = bytes(range(256)) * 100 + b"\n\x00tail"
    cache.put(key, payload)
    assert cache.get(key) == payload
    cache.put(key, b"")  # an empty artefact is a valid one
    assert cache.get(key) == b""


def test_make_key_is_unambiguous_and_deterministic() -> None:
    assert make_key("ab", "c") != make_key("a", "bc")
    assert make_key("a", "") != make_key("a")
    assert make_key("x", "y") == make_key("x", "y")
    assert len(make_key("x")) == 64
    with pytest.raises(CacheError, match="must be str"):
        make_key("x", 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "", "g" * 64, "a" * 63])
def test_keys_that_are_not_digests_are_refused(cache: CompileCache, bad: str) -> None:
    with pytest.raises(CacheError, match="64 lowercase hex"):
        cache.get(bad)
    with pytest.raises(CacheError):
        cache.put(bad, b"x")


def test_payload_must_be_bytes(cache: CompileCache) -> None:
    with pytest.raises(CacheError, match="bytes"):
        cache.put(make_key("k"), "text")  # type: ignore[arg-type]


def test_info_and_clear(cache: CompileCache) -> None:
    assert cache.info().entries == 0
    keys = [make_key(str(i)) for i in range(5)]
    for i, k in enumerate(keys):
        cache.put(k, b"x" * (i + 1))
    info = cache.info()
    assert info.entries == 5 and info.dir == str(cache.dir)
    assert info.bytes > 15  # payloads plus headers
    assert cache.clear() == 5
    assert cache.info().entries == 0
    assert all(cache.get(k) is None for k in keys)


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop_header", "other_key", "format",
                                    "garbage", "empty"])
def test_damaged_entry_is_rejected_deleted_and_rebuilt(cache: CompileCache, damage: str) -> None:
    key = make_key("ir text", "cpu")
    built: list[int] = []
    first = get_or_build(cache, key, built)
    path = _entry_path(cache, key)
    raw = path.read_bytes()
    header, _, payload = raw.partition(b"\n")
    if damage == "truncate":
        path.write_bytes(raw[:-3])
    elif damage == "flip":
        path.write_bytes(header + b"\n" + bytes([payload[0] ^ 1]) + payload[1:])
    elif damage == "drop_header":
        path.write_bytes(payload)
    elif damage == "other_key":
        fields = json.loads(header)
        fields["key"] = make_key("something else")
        path.write_bytes(json.dumps(fields).encode() + b"\n" + payload)
    elif damage == "format":
        fields = json.loads(header)
        fields["format"] = 999
        path.write_bytes(json.dumps(fields).encode() + b"\n" + payload)
    elif damage == "garbage":
        path.write_bytes(os.urandom(5000))
    else:
        path.write_bytes(b"")
    assert cache.get(key) is None
    assert not path.exists(), "a rejected entry must be deleted"
    assert get_or_build(cache, key, built) == first
    assert built == [1, 1]  # built once at first, once more after the damage
    assert cache.get(key) == first


class _Exploit:
    """Unpickling this creates a marker file: proof that something unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_pickle_payload_is_returned_as_bytes_never_unpickled(cache: CompileCache,
                                                             tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    evil = pickle.dumps(_Exploit(str(marker)))
    key = make_key("evil")
    cache.put(key, evil)
    got = cache.get(key)
    assert isinstance(got, bytes) and got == evil
    assert not marker.exists()


def test_file_crafted_as_pickle_is_rejected_not_loaded(cache: CompileCache,
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    key = make_key("planted")
    cache.put(key, b"genuine")
    path = _entry_path(cache, key)
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path.write_bytes(pickle.dumps(_Exploit(str(marker)), protocol=protocol))
        assert cache.get(key) is None
        assert not marker.exists()
        assert not path.exists()


def _writer(directory: str, key: str, fill: int, rounds: int) -> None:
    cache = CompileCache(directory)
    payload = bytes([fill]) * 300_000
    for _ in range(rounds):
        cache.put(key, payload)


def _reader(directory: str, key: str, rounds: int, queue: multiprocessing.Queue) -> None:
    cache = CompileCache(directory)
    seen = set()
    for _ in range(rounds):
        data = cache.get(key)
        if data is not None:
            seen.add((len(data), data[:1], data.count(data[:1]) == len(data)))
    queue.put(sorted(seen))


def test_concurrent_writers_of_one_key_leave_a_valid_entry(tmp_path: Path) -> None:
    directory, key, rounds = str(tmp_path / "shared"), make_key("same module"), 40
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(directory, key, fill, rounds)) for fill in (1, 2)]
    procs.append(ctx.Process(target=_reader, args=(directory, key, rounds * 2, queue)))
    for p in procs:
        p.start()
    seen = queue.get(timeout=120)
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    # the reader only ever saw complete, uniform payloads from one writer
    assert all(length == 300_000 and uniform and head in (b"\x01", b"\x02")
               for length, head, uniform in seen)
    data = CompileCache(directory).get(key)
    assert data in (b"\x01" * 300_000, b"\x02" * 300_000)
    leftovers = [p.name for p in Path(directory).rglob("*") if p.is_file()]
    assert leftovers == [f"{key}.bin"], leftovers


def test_unwritable_directory_is_a_miss_not_a_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = CompileCache(blocker)
    key = make_key("k")
    cache.put(key, b"data")  # logged, not raised: the cache is an optimisation
    assert cache.get(key) is None
    with pytest.raises(CacheError, match="not a directory"):
        cache.info()


def test_directory_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("IRC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "irc"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "irc"
    monkeypatch.setenv("IRC_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert open_cache(CacheConfig()).dir == tmp_path / "env"  # type: ignore[union-attr]
    explicit = open_cache(CacheConfig(dir=str(tmp_path / "cfg")))
    assert explicit is not None and explicit.dir == tmp_path / "cfg"
    assert open_cache(CacheConfig(enabled=False)) is None


def test_cli_info_and_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "c"
    cache = CompileCache(directory)
    for i in range(3):
        cache.put(make_key(str(i)), b"abc")
    assert irc_main(["cache", "info", "--set", f"cache.dir={directory}"]) == 0
    out = capsys.readouterr().out
    assert str(directory) in out and "entries:   3" in out
    assert irc_main(["cache", "clear", "--set", f"cache.dir={directory}"]) == 0
    assert "removed 3 entries" in capsys.readouterr().out
    assert cache.info().entries == 0
    assert irc_main(["cache", "info", "--set", "cache.dirr=x"]) == 1
    assert "did you mean 'cache.dir'" in capsys.readouterr().err


def test_cpu_object_code_is_keyed_on_the_llvm_ir(tmp_path: Path) -> None:
    """A changed LLVM translation (same loops IR, different LLVM IR) must not
    reuse object code compiled from the old translation."""
    from irc.backends.llvm.backend import jit_kernels

    template = ("define void @k(float* noalias %p) {{\n"
                "  store float {value}, float* %p\n  ret void\n}}\n")
    cfg = CacheConfig(enabled=True, dir=str(tmp_path))
    store = open_cache(cfg)
    assert store is not None

    import torch
    out = torch.zeros(1)
    for i, value in enumerate(["1.0", "2.0", "1.0"]):
        jit = jit_kernels(template.format(value=value), cfg)
        jit.function("k", 1)(out.data_ptr())
        assert out.item() == float(value)
        assert store.info().entries == min(i + 1, 2)
