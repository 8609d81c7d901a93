"""Fuzz tier: hypothesis against one real ``kubevino-serve`` process per module.

The promise under test (README): a client's mistake is a 4xx, or a client-side gRPC status,
whose message says what is wrong — never a 5xx, UNKNOWN or INTERNAL. properties.py states the
property once for every protocol; sentinel.py checks between batches of cases that the server
still runs, answers every protocol's known-valid request with what in-process OpenVINO computes,
logged no traceback and holds bounded memory.

Run it::

    .venv/bin/pytest tests/fuzz                              # CI size: about 6750 cases
    KUBEVINO_FUZZ_EXAMPLES=50000 .venv/bin/pytest tests/fuzz  # a longer run, same property
    KUBEVINO_FUZZ_SEED=7 .venv/bin/pytest tests/fuzz          # other cases than CI's

Cases are derandomized (the project's hypothesis profile): every run draws the same ones.

Layout: one module per protocol, each a set of strategies that build requests from the served
models' own metadata (catalog.py) and mutate them (strategies.py holds the shared hostile
ingredients), checked by properties.py:

* test_kserve_rest.py — KServe v2 REST inference: JSON bodies, the binary tensor extension;
* test_kserve_grpc.py — KServe v2 gRPC: ModelInfer, random bytes to every method, metadata;
* test_tfs_rest.py — TF-Serving REST predict, row and column formats;
* test_tfs_grpc.py — TF-Serving gRPC: Predict (tensor_content and typed values), random bytes
  to every method of PredictionService and ModelService, metadata and status;
* test_http_routes.py — every REST route: hostile names and versions, methods, content types,
  HTTP framing;
* generative/ — the OpenAI-compatible routes of ``kubevino-serve --task``, one server per task
  (text generation, embeddings, rerank) for the session: every field of chat/completions,
  completions, embeddings and rerank made hostile, token limits past the context, streaming
  clients that hang up, and every route's methods, content types and framing. Its shares add
  0.125 to the tensor protocols' 1.0 (about 750 cases at CI size, under a minute).
"""
