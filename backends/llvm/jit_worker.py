"""A child process of :func:`irc.backends.llvm.jit.compile_kernels`.

Reads a JSON list of LLVM IR texts from stdin and writes the object code of
each to stdout, in order, each prefixed with its length (8 bytes, little
endian). Imports llvmlite and irc's JIT module only (no torch), so it starts
in a fraction of a second. Any failure exits non-zero; the parent then
compiles that share itself.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from irc.backends.llvm.jit import emit_object
    texts = json.loads(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    for text in texts:
        blob = emit_object(text)
        out.write(len(blob).to_bytes(8, "little"))
        out.write(blob)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
