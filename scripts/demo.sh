#!/usr/bin/env bash
# Set up and run the main job on the embedded default: render the examples, serve the bundled
# model, ask it with real clients.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh
scripts/dev-env.sh
exec .venv/bin/python scripts/demo.py
