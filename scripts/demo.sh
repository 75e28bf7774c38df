#!/usr/bin/env bash
# Set up (if needed), compile Hugging Face GPT-2 with irc and show that it
# matches eager PyTorch, and how fast it is next to eager (--inductor: and torch.compile).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/quickstart.py "$@"
