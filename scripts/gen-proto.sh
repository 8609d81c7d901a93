#!/usr/bin/env bash
# Regenerate the committed gRPC code from the committed .proto files: KServe v2
# (runtime/kubevino_runtime/protocols/kserve_v2.proto) and TensorFlow Serving's API
# (runtime/kubevino_runtime/protocols/tfs_api/, vendored). Usage: gen-proto.sh [OUTPUT_ROOT]
# A unit test fails when the committed files differ from what this produces.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runtime}
mkdir -p "$out"
protoc() { python -m grpc_tools.protoc -Iruntime "$@"; }
protoc --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
  runtime/kubevino_runtime/protocols/kserve_v2.proto
tfs=runtime/kubevino_runtime/protocols/tfs_api
mapfile -t messages < <(find "$tfs" -name '*.proto' | LC_ALL=C sort)
protoc --python_out="$out" --pyi_out="$out" "${messages[@]}"
# Service stubs only for the two files that define services.
protoc --grpc_python_out="$out" \
  "$tfs/tensorflow_serving/apis/prediction_service.proto" \
  "$tfs/tensorflow_serving/apis/model_service.proto"
# Every generated module registers into the server's own descriptor pool (protocols/
# descriptors.py), not protobuf's default one, where client libraries' copies of the same
# names live.
find "$out/kubevino_runtime/protocols" -name '*_pb2.py' -print0 | xargs -0 sed -i \
  -e 's/^from google.protobuf import descriptor_pool as _descriptor_pool$/from kubevino_runtime.protocols.descriptors import POOL as _POOL/' \
  -e 's/^DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(/DESCRIPTOR = _POOL.AddSerializedFile(/'
