#!/usr/bin/env bash
# Regenerate the committed gRPC code from runtime/kubevino_runtime/protocols/kserve_v2.proto.
# A unit test fails when the committed files differ from what this produces.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runtime}
mkdir -p "$out"
python -m grpc_tools.protoc -Iruntime --python_out="$out" --grpc_python_out="$out" \
  --pyi_out="$out" runtime/kubevino_runtime/protocols/kserve_v2.proto
