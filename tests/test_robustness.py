"""``irc opt`` on damaged input: truncated text, swapped tokens, wrong types,
random bytes. It must answer with exit status 0 or 1 (a diagnostic), never
raise, and every failure must be a one-line-headed ``error:`` diagnostic."""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph_strategies import all_ops_module
from irc.cli import main
from irc.ir.text import print_module
from irc.passes.pipeline import GRAPH_PIPELINE

FILECHECK = Path(__file__).parent / "filecheck"
SEEDS: list[str] = [
    (FILECHECK / "cse.mlir").read_text(),
    (FILECHECK / "canonicalize.mlir").read_text().split("// -----")[2],
    (FILECHECK / "graph" / "generic.mlir").read_text(),
    print_module(all_ops_module(locations=True)),
]
_TOKEN = re.compile(r"%\w+|@\w+|\w+|[^\s\w]")
_TYPE_SWAPS = [("f32", "i1"), ("f32", "f16"), ("i64", "f32"), ("2x3", "3x2"), ("tensor<", "memref<"),
               ("4xf32", "xf32"), ("dims = array<i64: 1>", "dims = array<i64: 7>"), ("dense<", "dense<["),
               ("graph.add", "graph.sub"), ("graph.neg", "graph.matmul"), ("->", ","), ("%", "@")]
_WORKDIR = tempfile.TemporaryDirectory(prefix="irc-robustness-")


@st.composite
def damaged_texts(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "swap", "types", "bytes", "drop_line", "dup_line"]))
        if kind == "truncate" and text:
            text = text[:draw(st.integers(0, len(text) - 1))]
        elif kind == "swap":
            tokens = list(_TOKEN.finditer(text))
            if len(tokens) >= 2:
                i, j = sorted(draw(st.lists(st.integers(0, len(tokens) - 1), min_size=2, max_size=2,
                                            unique=True)))
                a, b = tokens[i], tokens[j]
                text = (text[:a.start()] + b.group() + text[a.end():b.start()] + a.group()
                        + text[b.end():])
        elif kind == "types":
            old, new = draw(st.sampled_from(_TYPE_SWAPS))
            if old in text:
                positions = [m.start() for m in re.finditer(re.escape(old), text)]
                at = draw(st.sampled_from(positions))
                text = text[:at] + new + text[at + len(old):]
        elif kind == "bytes":
            at = draw(st.integers(0, len(text)))
            junk = draw(st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), min_size=1,
                                max_size=6))
            text = text[:at] + junk + text[at:]
        elif kind == "drop_line":
            lines = text.splitlines()
            if lines:
                del lines[draw(st.integers(0, len(lines) - 1))]
            text = "\n".join(lines)
        elif kind == "dup_line":
            lines = text.splitlines()
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                lines.insert(i, lines[i])
            text = "\n".join(lines)
    return text


def run_opt(text: str, *flags: str) -> tuple[int, str]:
    path = Path(_WORKDIR.name) / "input.mlir"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["opt", str(path), *flags])
    return code, err.getvalue()


ROBUST = settings(max_examples=30, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@ROBUST
@given(damaged_texts())
def test_damaged_text_gives_a_diagnostic_not_a_crash(text: str) -> None:
    code, err = run_opt(text)
    assert code in (0, 1)
    assert "Traceback" not in err
    if code == 1:
        assert "error:" in err.splitlines()[0], err


@ROBUST
@given(damaged_texts())
def test_damaged_text_through_the_graph_pipeline(text: str) -> None:
    code, err = run_opt(text, "--pass-pipeline", GRAPH_PIPELINE)
    assert code in (0, 1)
    assert "internal error" not in err, err


@ROBUST
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    path = Path(_WORKDIR.name) / "bytes.mlir"
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["opt", str(path)])
    assert code in (0, 1)
    if code == 1:
        assert "error" in err.getvalue()
