#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, lint, types, every test tier on the
# project's Python (3.11), then the unit and runtime tiers on each other supported Python the
# machine has (3.12, 3.13; KUBEVINO_OTHER_PYTHONS overrides the list, "" runs none), then the
# cluster and node tiers again on the second pinned Kubernetes version (KUBE_VERSION_NEXT in
# scripts/versions.env; KUBEVINO_KUBE_VERSION_NEXT overrides it, "" runs none).
#
#   scripts/test.sh                      # everything
#   scripts/test.sh tests/unit -x        # pytest arguments: only that, on 3.11
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh
scripts/dev-env.sh
source .venv/bin/activate
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== pytest (Python $(python -c 'import platform; print(platform.python_version())'))"
pytest "$@"
[ $# -eq 0 ] || exit 0

for version in ${KUBEVINO_OTHER_PYTHONS-3.12 3.13}; do
  if ! interpreter=$(scripts/find-python.sh "$version"); then
    echo "== Python $version: not on this machine; its run did not happen"
    continue
  fi
  echo "== pytest on Python $version ($interpreter): unit and runtime tiers"
  PYTHON=$interpreter VENV=".venv-$version" scripts/dev-env.sh
  ".venv-$version/bin/pytest" -p no:cacheprovider tests/unit tests/runtime
done

# shellcheck source=versions.env
next=${KUBEVINO_KUBE_VERSION_NEXT-$(source scripts/versions.env && echo "$KUBE_VERSION_NEXT")}
if [ -n "$next" ]; then
  echo "== pytest on Kubernetes $next: cluster and node tiers"
  # Built here, before any test runs (the node tier's fixture would build it too, before it
  # enters its network namespace); seconds when cached.
  KUBEVINO_KUBE_VERSION=$next scripts/kube-bins.sh >/dev/null
  KUBEVINO_KUBE_VERSION=$next pytest -p no:cacheprovider tests/cluster tests/e2e
fi
