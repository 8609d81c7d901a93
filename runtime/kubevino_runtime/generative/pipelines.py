"""Load the GenAI pipeline a task needs, with Model Server's settings turned into GenAI's."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import openvino_genai as genai

from kubevino_runtime.cpulimits import user_chose_cpu_threads
from kubevino_runtime.generative.encoders import Embedder, Reranker
from kubevino_runtime.generative.layout import is_gguf
from kubevino_runtime.generative.openai_protocol import MAX_RERANK_DOCUMENTS
from kubevino_runtime.generative.settings import (
    EmbeddingSettings,
    GenerativeSettings,
    Task,
    TextGenerationSettings,
    uses_continuous_batching,
)
from kubevino_runtime.generative.text_generation import (
    ContinuousBatchingEngine,
    Engine,
    SequentialEngine,
)

log = logging.getLogger("kubevino.generative")

_POOLING: Final = {
    "CLS": genai.TextEmbeddingPipeline.PoolingType.CLS,
    "MEAN": genai.TextEmbeddingPipeline.PoolingType.MEAN,
    "LAST": genai.TextEmbeddingPipeline.PoolingType.LAST_TOKEN,
}


@dataclass
class TextGenerator:
    engine: Engine
    tokenizer: genai.Tokenizer
    context_length: int | None  # tokens the model attends to, where the files say
    continuous_batching: bool
    # The model's own generation settings (end-of-text tokens included), a fresh copy each call.
    default_config: Callable[[], genai.GenerationConfig]


Loaded = TextGenerator | Embedder | Reranker


def pipeline_name(loaded: Loaded) -> str:
    """The GenAI pipeline class serving the model (LLMPipeline is NPU's static pipeline there,
    or the one-request-at-a-time one of --pipeline_type LM)."""
    if isinstance(loaded, TextGenerator):
        return "ContinuousBatchingPipeline" if loaded.continuous_batching else "LLMPipeline"
    return "TextEmbeddingPipeline" if isinstance(loaded, Embedder) else "TextRerankPipeline"


def load(settings: GenerativeSettings, device: str) -> Loaded:
    properties = dict(settings.plugin_config)
    if settings.cache_dir:
        properties["CACHE_DIR"] = settings.cache_dir
    if settings.cpu_thread_cap and device == "CPU" and not user_chose_cpu_threads(properties):
        # GenAI compiles on a Core of its own: the server's Core default does not reach it.
        properties["INFERENCE_NUM_THREADS"] = settings.cpu_thread_cap
    path = str(settings.model_path)
    if settings.task is Task.EMBEDDINGS:
        config = _embedding_config(settings.embedding)
        embedder = genai.TextEmbeddingPipeline(path, device, config, **properties)
        return Embedder(embedder, genai.Tokenizer(path))
    if settings.task is Task.RERANK:
        rerank_config = genai.TextRerankPipeline.Config()
        rerank_config.top_n = MAX_RERANK_DOCUMENTS
        reranker = genai.TextRerankPipeline(path, device, rerank_config, **properties)
        return Reranker(reranker, genai.Tokenizer(path))
    return _text_generator(settings.model_path, settings.text, device, properties)


def _text_generator(
    model_path: Path, text: TextGenerationSettings, device: str, properties: dict[str, Any]
) -> TextGenerator:
    with openable_by_genai(model_path) as openable:
        return _text_generator_from(openable, context_length(model_path), text, device, properties)


@contextmanager
def openable_by_genai(model_path: Path) -> Iterator[Path]:
    """A path GenAI can load the model from while the context lasts.

    GenAI's GGUF reader opens the file read-write (gguflib's ``gguf_open``), so a GGUF file
    on a read-only volume (every model mount of a pod, a ``:ro`` bind mount) fails to load.
    Such a file is loaded from a private copy in the temporary directory (the pod's /tmp
    emptyDir), removed as soon as the pipeline is built: it costs the file's size on /tmp
    while loading only. Directories and writable files are used where they are."""
    if not is_gguf(model_path) or os.access(model_path, os.W_OK):
        yield model_path
        return
    with tempfile.TemporaryDirectory(prefix="kubevino-gguf-") as private:
        copy = Path(private) / model_path.name
        log.info("%s is read-only, which GenAI cannot open: loading from a copy", model_path)
        shutil.copyfile(model_path, copy)
        yield copy


def _text_generator_from(
    model_path: Path,
    context: int | None,
    text: TextGenerationSettings,
    device: str,
    properties: dict[str, Any],
) -> TextGenerator:
    if text.kv_cache_precision:
        properties["KV_CACHE_PRECISION"] = text.kv_cache_precision
    if uses_continuous_batching(text, device):
        pipeline = genai.ContinuousBatchingPipeline(
            str(model_path), scheduler_config(text), device, properties
        )
        engine: Engine = ContinuousBatchingEngine(pipeline)
        tokenizer = pipeline.get_tokenizer()
        default_config = pipeline.get_config
        batching = True
    else:
        if text.max_prompt_len is not None:
            properties["MAX_PROMPT_LEN"] = text.max_prompt_len
        llm = genai.LLMPipeline(str(model_path), device, **properties)
        engine = SequentialEngine(llm)
        tokenizer = llm.get_tokenizer()
        default_config = llm.get_generation_config
        batching = False
    if text.chat_template is not None:
        # The tokenizer's own chat template is replaced for every request: it is the one the
        # routes apply (the pipeline itself never applies a template to token ids).
        tokenizer.set_chat_template(text.chat_template)
        log.info(
            "chat template: the one given (%d characters), not the model's", len(text.chat_template)
        )
    log.info(
        "text generation on %s with %s (context %s tokens)",
        device,
        "continuous batching" if batching else "one request at a time (LLMPipeline)",
        context or "unknown",
    )
    return TextGenerator(engine, tokenizer, context, batching, default_config)


def scheduler_config(text: TextGenerationSettings) -> genai.SchedulerConfig:
    config = genai.SchedulerConfig()
    config.max_num_seqs = text.max_num_seqs
    config.cache_size = text.cache_size_gb
    config.enable_prefix_caching = text.enable_prefix_caching
    config.dynamic_split_fuse = text.dynamic_split_fuse
    if text.max_num_batched_tokens is not None:
        config.max_num_batched_tokens = text.max_num_batched_tokens
    return config


def _embedding_config(embedding: EmbeddingSettings) -> genai.TextEmbeddingPipeline.Config:
    config = genai.TextEmbeddingPipeline.Config()
    config.normalize = embedding.normalize
    config.pooling_type = _POOLING[embedding.pooling.value]
    return config


def context_length(model_path: Path) -> int | None:
    """The model's context length (tokens it attends to): GGUF metadata, or config.json
    beside the IR files (also for embedding and rerank models). None where they do not say it,
    or say it unreadably (a model GenAI can load anyway is not refused for that)."""
    try:
        if is_gguf(model_path):
            return _gguf_context_length(model_path)
        config = model_path / "config.json"
        if not config.is_file():
            return None
        found = json.loads(config.read_text())
    except (OSError, ValueError) as error:
        log.warning("the context length of %s is unknown: %s", model_path, error)
        return None
    value = found.get("max_position_embeddings") if isinstance(found, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _gguf_context_length(path: Path) -> int | None:
    import gguf

    reader = gguf.GGUFReader(str(path))
    architecture = reader.get_field("general.architecture")
    if architecture is None:
        return None
    field = reader.get_field(f"{architecture.contents()}.context_length")
    return int(field.contents()) if field is not None else None
