#!/usr/bin/env bash
# Print the path of a working Python interpreter of one minor version (e.g. 3.13), or exit 1.
# Looks on PATH, then in pyenv's versions (whose shims exist on PATH even for versions that
# are not selected, and then fail when run), then in /usr/bin.
set -euo pipefail
version=${1:?usage: find-python.sh 3.X}

works() {
  [ -x "$1" ] && [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ]
}

candidates=()
on_path=$(command -v "python$version" 2>/dev/null || true)
[ -n "$on_path" ] && candidates+=("$on_path")
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
for found in "$pyenv_root"/versions/"$version".*/bin/"python$version"; do
  [ -e "$found" ] && candidates+=("$found")
done
candidates+=("/usr/bin/python$version" "/usr/local/bin/python$version")

for candidate in "${candidates[@]}"; do
  if works "$candidate"; then
    # A shim runs whatever pyenv selects: hand over the real interpreter.
    "$candidate" -c 'import sys; print(sys.executable)'
    exit 0
  fi
done
exit 1
