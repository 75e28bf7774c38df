"""``irc opt``: run passes over a .mlir file, like ``mlir-opt``/``xdsl-opt``.

Guarantees: malformed input, verifier failures, unknown passes and bad pass
options are reported as ``file:line:col: error: message`` (with the source line
and a caret where there is a position) and exit status 1, never a traceback.
The IR is verified after parsing and, unless ``--no-verify-each``, after every
pass. With ``--split-input-file`` each ``// -----`` chunk is processed on its
own (line numbers stay those of the whole file) and the outputs are joined by
``// -----``. ``--verify-diagnostics`` checks ``expected-error`` comments
instead of failing, for tests of invalid IR.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from irc.errors import DiagnosticError, IrcError, PassError
from irc.ir.text import parse_module, print_module, verify_module
from irc.passes.pipeline import run_pipeline

_SPLIT_MARKER = re.compile(r"^// -----.*$", re.MULTILINE)


class _AppendPipeline(argparse.Action):
    """Keep ``--pass`` and ``--pass-pipeline`` in the order they were given."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        items = list(getattr(namespace, "pipeline_items", None) or [])
        items.append(str(values))
        namespace.pipeline_items = items


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", default="-", help="input .mlir file, or - for stdin")
    parser.add_argument("--pass", dest="pipeline_items", action=_AppendPipeline, metavar="NAME",
                        help="run a pass; options in braces: 'canonicalize{max-iterations=4}' "
                             "(repeatable, runs in order)")
    parser.add_argument("--pass-pipeline", dest="pipeline_items", action=_AppendPipeline,
                        metavar="PIPELINE", help="comma-separated passes: 'dce,cse,fuse{max-ops=8}'")
    parser.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    parser.add_argument("--print-ir-after-all", action="store_true",
                        help="print the IR to stderr after every pass")
    parser.add_argument("--print-ir-after", action="append", default=[], metavar="NAME",
                        help="print the IR to stderr after each run of pass NAME (repeatable)")
    parser.add_argument("--verify-each", action=argparse.BooleanOptionalAction, default=True,
                        help="verify the IR after every pass (default: on)")
    parser.add_argument("--list-passes", action="store_true", help="list the passes and exit")
    parser.add_argument("--generic", action="store_true", help="print generic op syntax")
    parser.add_argument("--split-input-file", action="store_true",
                        help="process each '// -----' separated chunk on its own")
    parser.add_argument("--verify-diagnostics", action="store_true",
                        help="check expected-error comments against the errors reported")
    parser.set_defaults(pipeline_items=[])


def list_passes() -> str:
    """One line per registered pass: name and the first line of its docstring."""
    from irc.passes.registry import get_pass, pass_names
    lines = []
    for name in pass_names():
        try:
            cls = get_pass(name)
            doc = (cls.__doc__ or "").strip().splitlines()
            summary = doc[0] if doc else ""
        except Exception as err:  # a plugin or pass module that fails to import
            summary = f"(unavailable: {type(err).__name__}: {err})"
        lines.append(f"  {name:<16} {summary}")
    return "Available passes:\n" + "\n".join(lines) + "\n"


def build_passes(items: list[str]) -> list[ModulePass]:
    from irc.passes.pipeline import parse_pipeline
    passes: list[ModulePass] = []
    for item in items:
        passes.extend(parse_pipeline(item))
    return passes


@dataclass
class Chunk:
    """One piece of the input: its text padded so line numbers match the file."""

    text: str
    first_line: int


def split_chunks(text: str, split: bool) -> list[Chunk]:
    if not split:
        return [Chunk(text, 1)]
    chunks, start, line = [], 0, 1
    for match in _SPLIT_MARKER.finditer(text):
        piece = text[start:match.start()]
        chunks.append(Chunk("\n" * (line - 1) + piece, line))
        line += piece.count("\n") + 1
        start = match.end() + 1 if match.end() < len(text) else match.end()
    chunks.append(Chunk("\n" * (line - 1) + text[start:], line))
    return chunks


def _process(chunk: Chunk, filename: str, passes: list[ModulePass],
             args: argparse.Namespace) -> str:
    """Parse, verify, run the passes; returns the printed result."""
    module, source_map = parse_module(chunk.text, filename)
    verify_module(module, source_map)
    def dump(p: ModulePass, module: ModuleOp) -> None:
        if args.print_ir_after_all or p.name in args.print_ir_after:
            sys.stderr.write(f"// -----// IR Dump After {p.name} //----- //\n")
            sys.stderr.write(_print(module, args))

    run_pipeline(module, passes, verify_each=args.verify_each, after_pass=dump,
                 source_map=source_map)
    return _print(module, args)


def _print(module: ModuleOp, args: argparse.Namespace) -> str:
    return print_module(module, generic=args.generic)


# ----------------------------------------------------------------------------
# --verify-diagnostics

_EXPECTED = re.compile(r"//\s*expected-(error|warning|note|remark)\s*(@[^\s{]+)?\s*\{\{(.*?)\}\}")


@dataclass
class Expectation:
    line: int
    message: str
    seen: bool = False


def expectations(text: str) -> list[Expectation]:
    """``// expected-error @+N {{msg}}`` (also ``@-N``, ``@above``, ``@below``,
    ``@LINE``, or none: the comment's own line)."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _EXPECTED.finditer(line):
            where = match.group(2)
            target = number
            if where in ("@above",):
                target = number - 1
            elif where in ("@below",):
                target = number + 1
            elif where and re.fullmatch(r"@[+-]\d+", where):
                target = number + int(where[1:])
            elif where and re.fullmatch(r"@\d+", where):
                target = int(where[1:])
            found.append(Expectation(target, match.group(3).strip()))
    return found


def _check_diagnostic(err: DiagnosticError, expected: list[Expectation], filename: str) -> str | None:
    """None when ``err`` was expected, else the complaint to print."""
    for exp in expected:
        if not exp.seen and exp.line == err.line and exp.message in err.message:
            exp.seen = True
            return None
    return f"{filename}:{err.line}:{err.col}: error: unexpected error: {err.message}"


# ----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.list_passes:
        sys.stdout.write(list_passes())
        return 0
    try:
        passes = build_passes(args.pipeline_items)
        from irc.passes.registry import get_pass
        for name in args.print_ir_after:
            get_pass(name)  # an unknown name is an error (with suggestions), not silence
    except PassError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    filename = "<stdin>" if args.input == "-" else args.input
    try:
        text = sys.stdin.read() if args.input == "-" else open(args.input, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as err:
        raise IrcError(f"error: cannot read {filename}: {err}") from None

    outputs: list[str] = []
    failed = False
    for chunk in split_chunks(text, args.split_input_file):
        expected = expectations(chunk.text) if args.verify_diagnostics else []
        try:
            outputs.append(_process(chunk, filename, passes, args))
        except DiagnosticError as err:
            if not args.verify_diagnostics:
                print(str(err), file=sys.stderr)
                failed = True
                continue
            complaint = _check_diagnostic(err, expected, filename)
            if complaint is not None:
                print(complaint, file=sys.stderr)
                failed = True
        except IrcError as err:
            print(str(err), file=sys.stderr)
            failed = True
            continue
        for exp in expected:
            if not exp.seen:
                print(f"{filename}:{exp.line}:1: error: expected error \"{exp.message}\" "
                      f"was not produced", file=sys.stderr)
                failed = True

    result = "// -----\n".join(outputs)
    if args.output == "-":
        sys.stdout.write(result)
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as out:
                out.write(result)
        except OSError as err:
            raise IrcError(f"error: cannot write {args.output}: {err}") from None
    return 1 if failed else 0
