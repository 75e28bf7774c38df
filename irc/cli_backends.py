"""``irc backends``: list the installed backends.

One row per backend: name, the IR level it consumes, where it came from
(builtin, in-process, or the entry point's distribution) and whether it can
run here. Broken plugins are listed with their error; they do not stop the
listing. Exit status is 0 even when a plugin is broken (``--strict`` makes it 1).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from irc.backends.registry import ALIASES, list_backends


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object per backend")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 if any backend is broken")


def run(args: argparse.Namespace) -> int:
    rows = list_backends()
    if args.json:
        for row in rows:
            print(json.dumps({**asdict(row), "status": row.status}))
    else:
        aliases: dict[str, list[str]] = {}
        for alias, target in ALIASES.items():
            aliases.setdefault(target, []).append(alias)
        table = [("NAME", "LEVEL", "ORIGIN", "STATUS")]
        for row in rows:
            name = row.name + (f" ({', '.join(sorted(aliases[row.name]))})" if row.name in aliases else "")
            table.append((name, row.level or "-", row.origin, row.status))
        widths = [max(len(r[i]) for r in table) for i in range(3)]
        for r in table:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
        notes = [(row.name, row.error or row.unavailable) for row in rows
                 if row.error is not None or row.unavailable is not None]
        if notes:
            print()
        for name, why in notes:
            print(f"{name}: {why}")
    return 1 if args.strict and any(row.error is not None for row in rows) else 0
