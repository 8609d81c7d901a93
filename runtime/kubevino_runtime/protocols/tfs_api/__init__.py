"""TensorFlow Serving's gRPC API: vendored .proto files (Apache-2.0, origin named in each) and
the Python code scripts/gen-proto.sh generates from them.

The protobuf packages are TensorFlow Serving's own (``tensorflow.serving``, ``tensorflow``), so
the services answer on the names TF-Serving clients call; only the import paths differ, which
keeps these modules under ``kubevino_runtime`` instead of a top-level ``tensorflow`` package.
"""
