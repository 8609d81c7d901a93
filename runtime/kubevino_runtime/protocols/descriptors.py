"""The descriptor pool of the server's generated protobuf code, apart from protobuf's default.

Client libraries register their own copies of the same wire names in the default pool
(tritonclient defines KServe's ``inference.*`` messages, TensorFlow Serving's packages the
``tensorflow.serving.*`` ones) from other ``.proto`` files, and the default pool refuses a second
definition of a name: with our own pool the server imports cleanly in any process. Wire names
are unchanged. ``scripts/gen-proto.sh`` points the generated modules here.
"""

from google.protobuf import any_pb2, descriptor_pool, wrappers_pb2

POOL = descriptor_pool.DescriptorPool()
# Well-known types our .proto files import.
for _well_known in (any_pb2, wrappers_pb2):
    POOL.AddSerializedFile(_well_known.DESCRIPTOR.serialized_pb)
