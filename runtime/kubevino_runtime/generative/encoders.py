"""Embeddings and rerank: one GenAI pipeline each, whose single infer request serves one call
at a time; the calls run in a worker thread so the event loop keeps serving."""

from __future__ import annotations

import asyncio

import openvino_genai as genai


class NothingToReadError(Exception):
    """A text that tokenizes to nothing but the special tokens. GenAI's pipelines mishandle
    those: a batch of empty texts embeds as a single vector, and a document of nothing beside
    others makes the rerank tokenizer write past its buffer (the process then aborts)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"text {index} tokenizes to nothing")
        self.index = index


class _Texts:
    """Counts the tokens of texts, and finds those with none of their own."""

    def __init__(self, tokenizer: genai.Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._special_only = self._count([""])[0]  # what the tokenizer adds to any text

    def _count(self, texts: list[str]) -> list[int]:
        mask = self._tokenizer.encode(texts).attention_mask.data
        if mask.shape[0] != len(texts):  # a batch of only empty texts comes back as one row
            return [int(self._tokenizer.encode([text]).attention_mask.data.sum()) for text in texts]
        return [int(row) for row in mask.sum(axis=1)]

    def checked_count(self, texts: list[str]) -> int:
        """The texts' tokens; NothingToReadError for the first that has none of its own."""
        counts = self._count(texts)
        for index, count in enumerate(counts):
            if count <= self._special_only:
                raise NothingToReadError(index)
        return sum(counts)


class Embedder:
    def __init__(self, pipeline: genai.TextEmbeddingPipeline, tokenizer: genai.Tokenizer) -> None:
        self._pipeline = pipeline
        self._texts = _Texts(tokenizer)
        self._turn = asyncio.Lock()

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """One vector per text, and how many tokens the texts were."""
        tokens = self._texts.checked_count(texts)
        async with self._turn:
            vectors = await asyncio.to_thread(self._pipeline.embed_documents, texts)
        if len(vectors) != len(texts):
            raise RuntimeError(f"GenAI embedded {len(texts)} texts as {len(vectors)} vectors")
        return [list(map(float, vector)) for vector in vectors], tokens


class Reranker:
    def __init__(self, pipeline: genai.TextRerankPipeline, tokenizer: genai.Tokenizer) -> None:
        self._pipeline = pipeline
        self._texts = _Texts(tokenizer)
        self._turn = asyncio.Lock()

    async def rerank(self, query: str, documents: list[str]) -> tuple[list[tuple[int, float]], int]:
        """(document index, relevance) pairs, most relevant first, and the tokens read.
        NothingToReadError's index counts the query as 0 and the documents from 1."""
        tokens = self._texts.checked_count([query, *documents])
        async with self._turn:
            ranked = await asyncio.to_thread(self._one_by_one, query, documents)
        return ranked, tokens

    def _one_by_one(self, query: str, documents: list[str]) -> list[tuple[int, float]]:
        """Each document scored in a call of its own. Given several, GenAI pairs the one query
        with each document inside the tokenizer, whose pair step (openvino-tokenizers'
        CombineSegments) writes past its buffer once the query outgrows the documents: a
        query of three words and four one-word documents corrupts the heap and aborts the
        process. A single pair never does."""
        scored = []
        for index, document in enumerate(documents):
            ((_, score),) = self._pipeline.rerank(query, [document])
            scored.append((index, float(score)))
        return sorted(scored, key=lambda pair: pair[1], reverse=True)
