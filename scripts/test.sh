#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, types, then every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh
scripts/dev-env.sh
source .venv/bin/activate
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== pytest"; pytest "$@"
