#!/usr/bin/env bash
# Static checks CI runs before the tests: ruff (lint + complexity limit) and
# pyright (basic mode), both configured in pyproject.toml; either failing fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# pyright cannot follow the editable install's package-dir mapping (irc.ir ->
# ir/, irc.passes -> passes/, ...): give it the same layout as links.
links=build/typecheck/irc
rm -rf build/typecheck && mkdir -p "$links"
for entry in irc/*; do ln -s "$PWD/$entry" "$links/"; done
for dir in ir frontends passes backends; do ln -s "$PWD/$dir" "$links/$dir"; done
.venv/bin/ruff check .
.venv/bin/pyright
