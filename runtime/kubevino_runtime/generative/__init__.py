"""Generative serving (``kubevino-serve --task ...``): text generation, embeddings and rerank
through openvino-genai, behind Model Server's OpenAI-compatible ``/v3`` REST API."""
