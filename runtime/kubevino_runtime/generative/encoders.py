"""Embeddings and rerank: one GenAI pipeline each, whose single infer request serves one call
at a time; the calls run in a worker thread so the event loop keeps serving."""

from __future__ import annotations

import asyncio

import openvino_genai as genai


class Embedder:
    def __init__(self, pipeline: genai.TextEmbeddingPipeline, tokenizer: genai.Tokenizer) -> None:
        self._pipeline = pipeline
        self._tokenizer = tokenizer
        self._turn = asyncio.Lock()

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """One vector per text, and how many tokens the texts were."""
        async with self._turn:
            vectors = await asyncio.to_thread(self._pipeline.embed_documents, texts)
        return [list(map(float, vector)) for vector in vectors], self.count_tokens(texts)

    def count_tokens(self, texts: list[str]) -> int:
        mask = self._tokenizer.encode(texts).attention_mask.data
        return int(mask.sum())


class Reranker:
    def __init__(self, pipeline: genai.TextRerankPipeline, tokenizer: genai.Tokenizer) -> None:
        self._pipeline = pipeline
        self._tokenizer = tokenizer
        self._turn = asyncio.Lock()

    async def rerank(self, query: str, documents: list[str]) -> tuple[list[tuple[int, float]], int]:
        """(document index, relevance) pairs, most relevant first, and the tokens read."""
        async with self._turn:
            ranked = await asyncio.to_thread(self._pipeline.rerank, query, documents)
        tokens = int(self._tokenizer.encode([query, *documents]).attention_mask.data.sum())
        return [(int(index), float(score)) for index, score in ranked], tokens
