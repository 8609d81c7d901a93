"""The fuzz tier's OpenAI-compatible routes: ``kubevino-serve --task`` for each task (text
generation, embeddings, rerank), one server each for the whole session, fuzzed with hostile
requests to every route (/v3/chat/completions, /v3/completions, /v3/embeddings, /v3/rerank,
/v3/models, the same under /v1 and /v3/v1, KServe health and /metrics).

The property (properties.py, with OpenAI's error object): a 2xx with a well-formed answer, or a
4xx whose body is ``{"error": {"message": ..., "type": ..., ...}}``; never a 5xx, never a
connection left hanging. Between batches the sentinel checks each server still runs, answers
its known-valid requests with what in-process GenAI computes, logged no traceback and left no
generation running (served.py).

* test_text_generation.py — chat/completions and completions: every field mutated, streaming,
  token limits past the context, clients that hang up mid-stream;
* test_encoders.py — embeddings and rerank;
* test_openai_routes.py — every route of the three servers: methods, content types, damaged
  bodies and broken framing.
"""
