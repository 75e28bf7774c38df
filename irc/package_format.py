"""The ``.ircpkg`` package format: layout, manifest, and the checks made at load.

Standard library only (``irc.load`` imports it without the compiler). A
package is a directory::

    model.ircpkg/
      manifest.json        format version, irc version, target, CPU, inputs/outputs, files
      model.so             every kernel (+ the native host schedule and C ABI where exported)
      schedule.json        the host schedule (irc-schedule, run by irc.loader_runtime)
      weights.safetensors  weights (quantized ones too) and constants; memory-mapped at load
      irc_model.h          the C ABI's header (where the package has one)

``manifest["files"]`` holds the size and sha256 of every other file. The
checks, in the order :func:`check_package` makes them, each an
:class:`irc.errors.PackageError` naming the file and what to do:

1. ownership: the directory and every file belong to the current user and
   are not writable by group or others (:func:`check_private`): loading a
   library is running its code. A checksum cannot stand in for this: whoever
   can write the library can write the manifest's checksum too;
2. the manifest parses and has this format and ``FORMAT_VERSION``;
3. every listed file exists with its size and sha256 (corruption, truncation,
   an edited weight or schedule);
4. the CPU has every feature the code was compiled for (``/proc/cpuinfo``).

Writing (:func:`write_atomically`): a temp directory beside the target,
``fsync``, then one ``rename``; an existing package is replaced whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from irc.errors import PackageError

FORMAT = "irc-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LIBRARY = "model.so"
SCHEDULE = "schedule.json"
WEIGHTS = "weights.safetensors"
HEADER = "irc_model.h"

# LLVM feature name -> /proc/cpuinfo flag, for the vector and bit-manipulation
# features generated kernels use; others (rdseed, aes...) are not checked:
# kernels never use them, and hypervisors hide some from /proc/cpuinfo
CPUINFO_FLAGS: dict[str, str] = {
    "sse": "sse", "sse2": "sse2", "sse3": "pni", "ssse3": "ssse3", "sse4.1": "sse4_1",
    "sse4.2": "sse4_2", "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c",
    "bmi": "bmi1", "bmi2": "bmi2", "popcnt": "popcnt", "lzcnt": "abm", "movbe": "movbe",
    "avx512f": "avx512f", "avx512bw": "avx512bw", "avx512cd": "avx512cd",
    "avx512dq": "avx512dq", "avx512vl": "avx512vl", "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16", "avx512ifma": "avx512ifma",
    "avx512vbmi": "avx512vbmi", "avx512vbmi2": "avx512_vbmi2", "avx512bitalg": "avx512_bitalg",
    "avx512vpopcntdq": "avx512_vpopcntdq", "avxvnni": "avx_vnni",
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_private(path: Path, what: str = "file") -> None:
    """``path`` belongs to this user and no one else may write it (else PackageError).

    Native code loaded from a path another user can write is code that user
    chose: a package, its library and the compile cache are refused then."""
    try:
        st = path.stat()
    except OSError as err:
        raise PackageError(f"{path}: cannot read this {what}: {err.strerror}") from None
    uid = os.getuid() if hasattr(os, "getuid") else None
    if uid is not None and st.st_uid != uid:
        raise PackageError(f"{path}: this {what} belongs to user id {st.st_uid}, not to you "
                           f"({uid}); irc refuses to load native code another user controls. "
                           f"Copy the package and check where it came from.")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PackageError(f"{path}: this {what} is writable by group or others "
                           f"(mode {stat.S_IMODE(st.st_mode):o}); irc refuses to load native code "
                           f"another user could have changed. Fix it with chmod go-w '{path}' "
                           f"if you trust its contents.")


def read_manifest(root: Path) -> dict:
    """The manifest of package ``root``, checked for format and version."""
    path = root / MANIFEST
    if not root.is_dir():
        raise PackageError(f"{root}: not an irc package (no such directory); "
                           "write one with irc.export or `irc export`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"{path}: missing: {root} is not an irc package") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PackageError(f"{path}: unreadable manifest ({err}); export the model again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackageError(f"{path}: not an irc package manifest (format "
                           f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        made = manifest.get("irc_version", "?")
        raise PackageError(f"{path}: package format version {version!r} (written by irc {made}); "
                           f"this irc reads version {FORMAT_VERSION}: export the model again "
                           f"with this irc, or load it with the irc that wrote it")
    return manifest


def check_files(root: Path, manifest: Mapping) -> None:
    """Every file the manifest lists has its size and sha256."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise PackageError(f"{root / MANIFEST}: lists no files; export the model again")
    for name, info in files.items():
        path = root / name
        if "/" in name or name.startswith("."):
            raise PackageError(f"{root / MANIFEST}: bad file name {name!r}")
        if not path.is_file():
            raise PackageError(f"{path}: missing from the package; export the model again")
        check_private(path)
        size = path.stat().st_size
        if size != info.get("bytes"):
            raise PackageError(f"{path}: {size} bytes, the manifest says {info.get('bytes')} "
                               f"(truncated or replaced); export the model again")
        if sha256_file(path) != info.get("sha256"):
            raise PackageError(f"{path}: checksum mismatch (the file was changed after export, "
                               f"or is corrupt); export the model again")


def cpu_flags() -> set[str] | None:
    """This CPU's feature flags (/proc/cpuinfo), or None where unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags") or line.startswith("Features"):
            return set(line.split(":", 1)[1].split())
    return None


def check_cpu(manifest: Mapping, root: Path) -> None:
    """This machine can run the package's code (architecture and CPU features)."""
    cpu = manifest.get("cpu") or {}
    arch = cpu.get("arch")
    here = os.uname().machine if hasattr(os, "uname") else None
    if arch and here and arch != here:
        raise PackageError(f"{root}: compiled for {arch}, this machine is {here}; "
                           f"export the model on a {here} machine")
    flags = cpu_flags()
    if flags is None:
        return
    missing = [f for f in cpu.get("features", []) if f in CPUINFO_FLAGS
               and CPUINFO_FLAGS[f] not in flags]
    if missing:
        raise PackageError(f"{root}: compiled for a CPU with {', '.join(missing)} "
                           f"({cpu.get('name', '?')}), which this CPU lacks; export the model on "
                           f"this machine (or one with the same CPU)")


def check_package(root: Path) -> dict:
    """Every check of the module docstring; returns the manifest."""
    check_private(root, "package directory")
    manifest = read_manifest(root)
    check_private(root / MANIFEST)
    check_files(root, manifest)
    check_cpu(manifest, root)
    return manifest


def file_entry(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def write_atomically(target: Path, fill: Callable[[Path], dict]) -> Path:
    """Make package ``target``: ``fill(tmp_dir)`` writes the files and returns
    the manifest (without ``files``); the manifest gets every file's entry,
    then the directory is fsynced and renamed into place in one step."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    try:
        os.chmod(tmp, 0o755)
        manifest = fill(tmp)
        manifest["files"] = {p.name: file_entry(p) for p in sorted(tmp.iterdir())
                             if p.is_file() and p.name != MANIFEST}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        for p in tmp.iterdir():
            os.chmod(p, 0o644)
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.rename(target, old / "pkg")
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
