"""The on-disk compile cache: bytes in, bytes out, never trusted blindly.

Guarantees:

* An entry is one file ``<dir>/<key[:2]>/<key>.bin``: a one-line JSON header
  (magic, format version, key, payload length, sha256 of the payload) then the
  raw payload bytes. :meth:`CompileCache.get` returns the payload only if the
  header parses, names this key and format, and both the length and the sha256
  match; anything else (truncated, corrupt, foreign file) is deleted and
  reported as a miss, so the caller rebuilds and ``put``s it again.
* Writes are atomic: a temp file in the same directory, ``fsync``, then
  ``os.replace``. Two processes writing one key leave one complete entry (the
  last writer's); a reader sees an old complete entry, a new one, or a miss.
* Payloads are opaque bytes. Nothing is ever unpickled, evaluated or imported:
  what a backend stores (object code, kernel source) it parses itself.
* Loading object code is running code: the directory is created 0700, and
  :func:`open_cache` raises :class:`irc.errors.CacheError` naming it when it
  belongs to another user or group/others may write it (the checksums catch
  corruption, not a planted entry: whoever can write an entry can write its
  header too). Backends then compile without the cache, with a warning.
* The cache is an optimisation: I/O failures in ``get``/``put`` are logged on
  the ``irc.cache`` logger and treated as a miss / no-op, so a read-only or
  full disk never fails a compile. ``info``/``clear`` on an unusable directory
  raise :class:`irc.errors.CacheError`.

Where: the ``cache.dir`` key (``CacheConfig.dir``) if set. Its default (empty)
means ``$IRC_CACHE_DIR``, else ``$XDG_CACHE_HOME/irc``, else ``~/.cache/irc``:
``IRC_CACHE_DIR`` is only the default of that key (a way to point a whole
process, e.g. a benchmark's subprocess, at a fresh cache), never a second
switch beside it: a set ``cache.dir`` always wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from irc.errors import CacheError

FORMAT_VERSION = 1
MAGIC = "irc-cache"
_HEADER_LIMIT = 4096  # a header longer than this is not ours
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX = ".bin"
_STALE_TEMP_SECONDS = 600.0
log = logging.getLogger("irc.cache")


@dataclass(frozen=True)
class CacheConfig:
    """The ``cache`` section of :class:`irc.config.Config`."""

    enabled: bool = True
    """Look up and store compiled artefacts on disk."""
    dir: str = ""
    """Cache directory; empty means $IRC_CACHE_DIR, $XDG_CACHE_HOME/irc or ~/.cache/irc."""


@dataclass(frozen=True)
class CacheInfo:
    """What ``irc cache info`` prints."""

    dir: str
    entries: int
    bytes: int


def default_cache_dir() -> Path:
    """$IRC_CACHE_DIR, else $XDG_CACHE_HOME/irc, else ~/.cache/irc."""
    if os.environ.get("IRC_CACHE_DIR"):
        return Path(os.environ["IRC_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "irc"


def make_key(*parts: str) -> str:
    """sha256 (hex) of the parts, each length-prefixed so that
    ``("ab", "c")`` and ``("a", "bc")`` differ. Pass everything the artefact
    depends on: IR text, target, CPU features, irc version, LLVM version."""
    h = hashlib.sha256()
    for part in parts:
        if not isinstance(part, str):
            raise CacheError(f"cache key parts must be str, got {type(part).__name__}")
        data = part.encode("utf-8")
        h.update(f"{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


class CompileCache:
    """A directory of checksummed entries (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(directory).expanduser() if directory else default_cache_dir()
        self._checked = False

    def _checked_dir(self) -> Path:
        """The cache directory, created 0700; refused (CacheError naming it) when it
        belongs to another user or group/others may write it: object code loaded
        from it runs in this process. A checksum cannot stand in for this check."""
        if self._checked:
            return self.dir
        if not self.dir.exists():
            self.dir.mkdir(parents=True, mode=0o700)
            os.chmod(self.dir, 0o700)  # mkdir's mode is masked by the umask
        from irc.errors import PackageError
        from irc.package_format import check_private
        try:
            check_private(self.dir, "compile cache directory")
        except PackageError as err:
            raise CacheError(str(err).replace("Copy the package and check where it came from.",
                                              "Use a cache directory of your own (cache.dir).")) \
                from None
        self._checked = True
        return self.dir

    def _path(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise CacheError(f"cache key must be 64 lowercase hex digits (use irc.cache.make_key), "
                             f"got {key!r}")
        return self.dir / key[:2] / f"{key}{_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        """The payload stored under ``key``, or None (missing or rejected)."""
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                header_line = f.readline(_HEADER_LIMIT)
                payload = f.read()
        except FileNotFoundError:
            return None
        except OSError as err:
            log.warning("compile cache: cannot read %s: %s", path, err)
            return None
        problem = _check(key, header_line, payload)
        if problem is None:
            return payload
        log.warning("compile cache: rejecting %s (%s); it will be rebuilt", path, problem)
        _unlink(path)
        return None

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (replacing any entry)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CacheError(f"cache payloads are bytes, got {type(data).__name__}")
        payload = bytes(data)
        path = self._path(key)
        header = {"magic": MAGIC, "format": FORMAT_VERSION, "key": key, "length": len(payload),
                  "sha256": hashlib.sha256(payload).hexdigest()}
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=_SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(header, sort_keys=True).encode() + b"\n")
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError as err:
            log.warning("compile cache: cannot write %s: %s", path, err)
        finally:
            if tmp is not None:
                _unlink(Path(tmp))

    def _entries(self) -> list[Path]:
        if self.dir.exists() and not self.dir.is_dir():
            raise CacheError(f"cache directory {self.dir} exists and is not a directory")
        if not self.dir.exists():
            return []
        return [p for p in self.dir.glob(f"??/*{_SUFFIX}") if p.is_file()]

    def info(self) -> CacheInfo:
        """Directory, number of entries and their total size in bytes."""
        entries = [p for p in self._entries() if not p.name.startswith(".tmp-")]
        total = 0
        for p in entries:
            try:
                total += p.stat().st_size
            except FileNotFoundError:  # removed by a concurrent clear
                pass
        return CacheInfo(str(self.dir), len(entries), total)

    def clear(self) -> int:
        """Delete every entry (and leftover temp files); returns how many entries."""
        removed = 0
        now = time.time()
        for p in self._entries():
            if p.name.startswith(".tmp-"):
                if _age(p, now) > _STALE_TEMP_SECONDS:  # a young one may be a write in progress
                    _unlink(p)
            elif _unlink(p):
                removed += 1
        for sub in self.dir.glob("??") if self.dir.is_dir() else []:
            try:
                sub.rmdir()  # only succeeds when empty
            except OSError:
                pass
        return removed


def _check(key: str, header_line: bytes, payload: bytes) -> str | None:
    """None if the entry is sound, else what is wrong with it."""
    if not header_line.endswith(b"\n"):
        return "no header line"
    try:
        header = json.loads(header_line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "header is not JSON"
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        return "not an irc cache entry"
    if header.get("format") != FORMAT_VERSION:
        return f"format {header.get('format')!r}, expected {FORMAT_VERSION}"
    if header.get("key") != key:
        return "entry belongs to another key"
    if header.get("length") != len(payload):
        return f"payload is {len(payload)} bytes, header says {header.get('length')!r} (truncated?)"
    if header.get("sha256") != hashlib.sha256(payload).hexdigest():
        return "payload checksum mismatch"
    return None


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    except OSError as err:
        log.warning("compile cache: cannot delete %s: %s", path, err)
        return False


def open_cache(config: CacheConfig | None = None) -> CompileCache | None:
    """The cache a backend should use under ``config`` (None when disabled).

    Backends: ``cache = open_cache(options.cache)``; then
    ``key = make_key(ir_text, target, cpu_features, irc_version, llvm_version)``,
    ``blob = cache.get(key)`` and, on a miss, build and ``cache.put(key, blob)``.
    """
    config = config or CacheConfig()
    if not config.enabled:
        return None
    cache = CompileCache(config.dir or None)
    try:
        cache._checked_dir()
    except OSError as err:
        raise CacheError(f"compile cache directory {cache.dir}: {err.strerror}") from None
    return cache
