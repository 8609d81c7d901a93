#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv with every extra installed.
# Idempotent: reinstalls only when pyproject.toml or constraints.txt changed since last time.
#
#   PYTHON=/path/to/python3.13 VENV=.venv-3.13 scripts/dev-env.sh   # another interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
venv=${VENV:-.venv}
stamp="$venv/.kubevino-installed"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[operator,runtime,test]"
  echo "$want" > "$stamp"
fi
