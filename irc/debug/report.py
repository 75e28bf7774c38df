"""Bisect reports: plain text for the terminal, one self-contained HTML page.

The HTML page has no external resources: the kernel graph and the error plot
are inline SVG laid out here (layers = networkx topological generations;
hand-placed because a dozen lines of coordinates beat pulling in a JS graph
library for one picture).
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import networkx as nx

from irc.debug.snippets import display_source

if TYPE_CHECKING:
    from irc.debug.bisect import BisectReport


def _err(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.3e}"


def _alone(op: object) -> str:
    alone = getattr(op, "alone", None)
    return "" if alone is None else ("ok alone" if alone else "FAILS")


def text_report(report: BisectReport) -> str:
    """The report as text: verdict, culprit with ops and source lines, steps, IR, code."""
    lines = [f"irc bisect on target '{report.target}': {len(report.kernels)} kernel(s), "
             f"rtol={report.rtol:g} atol={report.atol:g}", report.message]
    if report.culprit is not None:
        lines.append(f"culprit kernel: {report.culprit} (#{report.culprit_index} in schedule order)")
        lines.append("ops:")
        for op in report.culprit_ops:
            where = display_source(op.source) if op.source else "(unknown source)"
            text = f"    {op.source_text}" if op.source_text else ""
            lines.append(f"  {_alone(op):<10} {op.name:<20} {where}{text}")
    lines.append("steps:")
    for i, s in enumerate(report.steps):
        verdict = "ok" if s.passed else "FAIL"
        lines.append(f"  {i:>2}. {s.label:<36} max abs {_err(s.max_abs):>10}  "
                     f"max rel {_err(s.max_rel):>10}  {verdict}")
        if s.error:
            lines.append(f"      error: {s.error}")
    lines.append(f"model runs: {report.model_runs}")
    if report.case_dir is not None:
        lines.append(f"reproducer: irc test-carved {report.case_dir} --target {report.target}")
    if report.kernel_ir:
        lines += ["", "kernel IR:", report.kernel_ir.rstrip()]
    if report.generated_code:
        lines += ["", f"generated code ({report.target}):", report.generated_code.rstrip()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# SVG pieces

MAX_GRAPH_NODES = 120  # beyond this the kernel graph shows the culprit's neighbourhood
NEIGHBOURHOOD = 6


def graph_svg(nodes: dict[str, str], edges: list[tuple[str, str]], culprit: str | None,
              kernels: list[str]) -> str:
    """The host dataflow graph, one row per topological generation. Past
    :data:`MAX_GRAPH_NODES` nodes only the culprit's neighbourhood is drawn."""
    if not nodes:
        return "<p>(no kernels)</p>"
    dg = nx.DiGraph()
    dg.add_nodes_from(nodes)
    dg.add_edges_from(edges)
    note = ""
    if dg.number_of_nodes() > MAX_GRAPH_NODES:
        center = culprit if culprit in dg else next(iter(nodes))
        near = nx.single_source_shortest_path_length(dg.to_undirected(as_view=True), center,
                                                     cutoff=NEIGHBOURHOOD)
        keep = sorted(near, key=lambda n: (near[n], list(nodes).index(n)))[:MAX_GRAPH_NODES]
        note = (f"<p>(showing {len(keep)} of {dg.number_of_nodes()} nodes: those within "
                f"{NEIGHBOURHOOD} steps of {html.escape(str(center))})</p>")
        dg = dg.subgraph(keep).copy()
        edges = [(a, b) for a, b in edges if a in dg and b in dg]
        nodes = {n: label for n, label in nodes.items() if n in dg}
    layers = [sorted(layer, key=list(nodes).index) for layer in nx.topological_generations(dg)]
    box_w, box_h, gap_x, gap_y = 130, 26, 16, 36
    width = max(len(layer) for layer in layers) * (box_w + gap_x) + gap_x
    height = len(layers) * (box_h + gap_y) + gap_y
    pos: dict[str, tuple[float, float]] = {}
    for row, layer in enumerate(layers):
        offset = (width - len(layer) * (box_w + gap_x) + gap_x) / 2
        for col, node in enumerate(layer):
            pos[node] = (offset + col * (box_w + gap_x), gap_y / 2 + row * (box_h + gap_y))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
             f'font-family="monospace" font-size="11">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
             'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>']
    for a, b in edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        parts.append(f'<line x1="{x1 + box_w / 2:.1f}" y1="{y1 + box_h:.1f}" x2="{x2 + box_w / 2:.1f}" '
                     f'y2="{y2:.1f}" stroke="#888" marker-end="url(#arrow)"/>')
    kernel_set = set(kernels)
    for node, (x, y) in pos.items():
        fill = "#f66" if node == culprit else ("#cde" if node in kernel_set else "#eee")
        stroke = "#900" if node == culprit else "#555"
        label = html.escape(nodes[node][:18])
        parts.append(f'<g><title>{html.escape(node)}</title><rect x="{x:.1f}" y="{y:.1f}" '
                     f'width="{box_w}" height="{box_h}" rx="4" fill="{fill}" stroke="{stroke}"/>'
                     f'<text x="{x + box_w / 2:.1f}" y="{y + box_h / 2 + 4:.1f}" '
                     f'text-anchor="middle">{label}</text></g>')
    parts.append("</svg>")
    return note + "\n".join(parts)


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#d62728"]


FLOOR = -12  # log10 of the error plotted for an exact match


def _log(x: float, top: float = math.inf) -> float:
    if math.isinf(x) or math.isnan(x):
        return top
    return math.log10(max(x, 10.0 ** FLOOR))


def error_plot_svg(report: BisectReport) -> str:
    """Per-kernel output error (log10 max abs vs the eager run) for each step of
    the search: one polyline per step; the culprit's column is marked."""
    kernels = report.kernels
    steps = [s for s in report.steps if s.kernel_errors]
    if not kernels or not steps:
        return "<p>(no per-kernel errors recorded)</p>"
    width, height, left, bottom, top = 640, 260, 50, 30, 10
    n = len(kernels)
    finite = [_log(v) for s in steps for v in s.kernel_errors.values() if math.isfinite(v)]
    ys = finite + [_log(report.atol)]
    lo, hi = math.floor(min(ys)), math.ceil(max(ys)) + 1  # the top row is "inf"

    def px(i: int) -> float:
        return left + (width - left - 10) * (i / max(n - 1, 1))

    def py(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="monospace" font-size="10">',
             f'<rect x="{left}" y="{top}" width="{width - left - 10}" height="{height - top - bottom}" '
             f'fill="none" stroke="#999"/>']
    every = max(1, math.ceil((hi - lo) / 8))
    for e in [*range(int(lo), int(hi) - every + 1, every), int(hi)]:
        label = "0" if e == FLOOR else ("inf" if e == hi else f"1e{e}")
        parts.append(f'<text x="{left - 4}" y="{py(e) + 3:.1f}" text-anchor="end">{label}</text>')
    if report.culprit_index is not None:
        x = px(report.culprit_index)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" '
                     f'stroke="#f00" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x + 3:.1f}" y="{top + 12}" fill="#c00">'
                     f'{html.escape(report.culprit or "")}</text>')
    tol = py(_log(report.atol))
    parts.append(f'<line x1="{left}" y1="{tol:.1f}" x2="{width - 10}" y2="{tol:.1f}" stroke="#0a0" '
                 f'stroke-dasharray="2 2"/><text x="{width - 12}" y="{tol - 3:.1f}" text-anchor="end" '
                 f'fill="#070">atol</text>')
    for j, s in enumerate(steps):
        xy = [(px(i), py(_log(s.kernel_errors[k], hi)))
              for i, k in enumerate(kernels) if k in s.kernel_errors]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        color = PALETTE[j % len(PALETTE)]
        if len(xy) <= 100:
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{color}"/>' for x, y in xy)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5">'
                     f'<title>{html.escape(s.label)}</title></polyline>')
    parts.append(f'<text x="{(width + left) / 2:.0f}" y="{height - 2}" text-anchor="middle">'
                 f'kernel (schedule order)</text></svg>')
    legend = " ".join(f'<span style="color:{PALETTE[j % len(PALETTE)]}">&#9632; {html.escape(s.label)}'
                      f'</span>' for j, s in enumerate(steps))
    return "\n".join(parts) + f"<p>{legend}</p>"


def html_report(report: BisectReport) -> str:
    """A self-contained HTML page: verdict, kernel graph, error plot, steps, IR, code."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{i}</td><td>{e(s.label)}</td><td>{_err(s.max_abs)}</td><td>{_err(s.max_rel)}</td>"
        f"<td class={'ok' if s.passed else 'bad'}>{'ok' if s.passed else 'FAIL'}</td>"
        f"<td>{e(s.error or '')}</td></tr>"
        for i, s in enumerate(report.steps))
    ops = "".join(f"<tr><td>{e(op.name)}</td><td class={'bad' if op.alone is False else 'ok'}>"
                  f"{e(_alone(op))}</td><td>{e(op.source or '-')}</td>"
                  f"<td><code>{e(op.source_text or '')}</code></td></tr>" for op in report.culprit_ops)
    culprit = ""
    if report.culprit is not None:
        culprit = (f"<h2>Culprit: {e(report.culprit)}</h2><table><tr><th>op</th><th>compiled alone</th>"
                   f"<th>source</th><th>line</th></tr>{ops}</table>")
        if report.case_dir is not None:
            culprit += (f"<p>Reproducer: <code>irc test-carved {e(str(report.case_dir))} "
                        f"--target {e(report.target)}</code></p>")
    code = ""
    if report.kernel_ir:
        code += f"<h2>Kernel IR</h2><pre>{e(report.kernel_ir)}</pre>"
    if report.generated_code:
        code += f"<h2>Generated code ({e(report.target)})</h2><pre>{e(report.generated_code)}</pre>"
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>irc bisect: {e(report.target)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }} pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 8px; }}
.ok {{ color: #070; }} .bad {{ color: #c00; font-weight: bold; }}
</style></head><body>
<h1>irc bisect on target '{e(report.target)}'</h1>
<p>{e(report.message)}</p>
<p>{len(report.kernels)} kernels; rtol={report.rtol:g}, atol={report.atol:g};
model runs: <b>{report.model_runs}</b></p>
{culprit}
<h2>Kernel graph</h2>
{graph_svg(report.nodes, report.edges, report.culprit, report.kernels)}
<h2>Per-kernel error along the search</h2>
{error_plot_svg(report)}
<h2>Steps</h2>
<table><tr><th>#</th><th>step</th><th>max abs err</th><th>max rel err</th><th></th><th>error</th></tr>{rows}</table>
{code}
</body></html>
"""
