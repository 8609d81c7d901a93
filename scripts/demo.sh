#!/usr/bin/env bash
# The operator end to end: a throwaway local cluster, the chart, InferenceModels, real clients
# (scripts/demo.py says what; `scripts/demo.sh --help`). Without root: the offline demo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && [[ " $* " != *" --cluster existing "* ]] && ! scripts/kube-bins.sh --cached; then
  echo "demo: first run on this machine: the local cluster runs pinned upstream Kubernetes, etcd,"
  echo "demo: helm and containerd built from source with Go (scripts/kube-bins.sh), about 10 minutes"
  echo "demo: on 2 cores, once: they are cached in ~/.cache/kubevino for every later run."
fi
scripts/system-packages.sh
scripts/dev-env.sh
exec .venv/bin/python scripts/demo.py "$@"
