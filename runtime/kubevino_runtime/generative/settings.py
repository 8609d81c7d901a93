"""What ``--task`` and the generation flags ask for, checked before anything loads.

The flags are Model Server's, with its meanings and defaults; the values kubevino-serve cannot
honour are refused (exit 64) rather than ignored.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Final

from kubevino_runtime.generative.layout import LayoutError, is_gguf, model_location
from kubevino_runtime.parity import UsageError
from kubevino_runtime.repository import ConfigError, parse_json_object


class Task(Enum):
    TEXT_GENERATION = "text_generation"
    EMBEDDINGS = "embeddings"
    RERANK = "rerank"


# Model Server's other tasks, refused with a reason.
OTHER_TASKS: Final = ("image_generation", "text2speech", "speech2text")


class PipelineType(Enum):
    AUTO = "AUTO"  # continuous batching, except where the device has none (NPU)
    LM = "LM"  # LLMPipeline: one request at a time
    LM_CB = "LM_CB"  # ContinuousBatchingPipeline


class Pooling(Enum):
    CLS = "CLS"
    LAST = "LAST"
    MEAN = "MEAN"


@dataclass(frozen=True)
class TextGenerationSettings:
    pipeline_type: PipelineType = PipelineType.AUTO
    max_num_seqs: int = 256
    cache_size_gb: int = 0  # 0: the KV cache grows as needed
    max_num_batched_tokens: int | None = None
    enable_prefix_caching: bool = True
    dynamic_split_fuse: bool = True
    kv_cache_precision: str | None = None
    max_prompt_len: int | None = None
    chat_template: str | None = None  # None: the model's own


@dataclass(frozen=True)
class EmbeddingSettings:
    normalize: bool = True
    pooling: Pooling = Pooling.CLS


@dataclass(frozen=True)
class GenerativeSettings:
    task: Task
    model_name: str
    model_path: Path  # a GenAI model directory, or one .gguf file (once locate_model ran)
    target_device: str | None  # None: the recommended device
    plugin_config: dict[str, Any]
    cache_dir: str | None
    text: TextGenerationSettings
    embedding: EmbeddingSettings
    gguf_filename: str | None = None  # a .gguf file inside model_path, as Model Server's flag
    chat_template_file: str | None = None  # kubevino-serve's --chat_template_file
    # Threads for a CPU pipeline when a CPU quota allows fewer than the cpuset (cpulimits).
    cpu_thread_cap: int | None = None


# Model Server's name for a chat template beside the model, replacing the model's own.
CHAT_TEMPLATE_FILE: Final = "chat_template.jinja"

# The flags that belong to one task, with the attribute argparse stores them under.
TEXT_FLAGS: Final = (
    "pipeline_type",
    "max_num_seqs",
    "cache_size",
    "max_num_batched_tokens",
    "enable_prefix_caching",
    "dynamic_split_fuse",
    "kv_cache_precision",
    "max_prompt_len",
    "gguf_filename",
    "chat_template_file",
)
EMBEDDING_FLAGS: Final = ("normalize", "pooling")
# Model flags that describe an OpenVINO IR model served over KServe, not a generative pipeline
# (startup.py's MODEL_FLAGS adds the two both kinds take).
IR_MODEL_FLAGS: Final = (
    "batch_size",
    "shape",
    "layout",
    "mean",
    "scale",
    "precision",
    "model_version_policy",
    "nireq",
)


def true_or_false(text: str) -> bool:
    """Model Server's boolean flags take the words true and false."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")


def check_generation_flags(args: argparse.Namespace) -> None:
    """Usage errors of the generation flags: each belongs to its task."""

    def given(names: tuple[str, ...]) -> list[str]:
        return [f"--{name}" for name in names if getattr(args, name, None) is not None]

    if args.task is None:
        stray = given(TEXT_FLAGS + EMBEDDING_FLAGS)
        if stray:
            raise UsageError(f"{', '.join(stray)} need --task, as in Model Server")
        return
    if args.task in OTHER_TASKS:
        raise UsageError(
            f"--task {args.task} is a Model Server task kubevino-serve does not serve; it "
            "serves text_generation, embeddings and rerank: serve this model with OpenVINO "
            "Model Server itself"
        )
    if args.task not in {task.value for task in Task}:
        raise UsageError(
            f"--task must be one of text_generation, embeddings, rerank (got {args.task!r})"
        )
    if args.config_path:
        raise UsageError(
            "--task serves the one model of --model_path and --model_name; it does not go "
            "with --config_path"
        )
    ir_flags = given(IR_MODEL_FLAGS)
    if ir_flags:
        raise UsageError(
            f"{', '.join(ir_flags)} describe an OpenVINO IR model served over KServe; "
            f"--task {args.task} serves a generative pipeline, which they do not apply to"
        )
    if args.task != Task.TEXT_GENERATION.value and given(TEXT_FLAGS):
        raise UsageError(
            f"{', '.join(given(TEXT_FLAGS))} apply to --task text_generation, not {args.task}"
        )
    if args.task != Task.EMBEDDINGS.value and given(EMBEDDING_FLAGS):
        raise UsageError(
            f"{', '.join(given(EMBEDDING_FLAGS))} apply to --task embeddings, not {args.task}"
        )
    for name in ("max_num_seqs", "max_num_batched_tokens", "max_prompt_len"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be 1 or more")
    if args.cache_size is not None and args.cache_size < 0:
        raise UsageError("--cache_size must be 0 (grow as needed) or more gigabytes")
    if args.kv_cache_precision not in (None, "", "u8"):
        raise UsageError("--kv_cache_precision must be u8 or empty, as in Model Server")
    if args.pipeline_type is not None and args.pipeline_type not in PipelineType.__members__:
        if args.pipeline_type in ("VLM", "VLM_CB"):
            raise UsageError(
                f"--pipeline_type {args.pipeline_type} asks for a vision-language pipeline, "
                "which kubevino-serve does not serve; give LM, LM_CB or AUTO, or serve the "
                "model with OpenVINO Model Server itself"
            )
        raise UsageError("--pipeline_type must be one of LM, LM_CB, VLM, VLM_CB, AUTO")
    if args.pooling is not None and args.pooling not in Pooling.__members__:
        raise UsageError("--pooling must be one of CLS, LAST, MEAN")


def settings_from_args(args: argparse.Namespace, cache_dir: str | None) -> GenerativeSettings:
    """The settings of a command line with --task (check_generation_flags passed); a
    malformed --plugin_config raises ConfigError."""
    path = Path(args.model_path)
    if is_gguf(path) and args.task != Task.TEXT_GENERATION.value:
        raise UsageError(f"--model_path {path}: GGUF files serve --task text_generation only")
    text = TextGenerationSettings(
        pipeline_type=PipelineType(args.pipeline_type or "AUTO"),
        max_num_seqs=args.max_num_seqs or 256,
        cache_size_gb=args.cache_size or 0,
        max_num_batched_tokens=args.max_num_batched_tokens,
        enable_prefix_caching=_default(args.enable_prefix_caching, True),
        dynamic_split_fuse=_default(args.dynamic_split_fuse, True),
        kv_cache_precision=args.kv_cache_precision or None,
        max_prompt_len=args.max_prompt_len,
    )
    embedding = EmbeddingSettings(
        normalize=_default(args.normalize, True),
        pooling=Pooling(args.pooling or "CLS"),
    )
    plugin_config = parse_json_object(args.plugin_config, "--plugin_config") or {}
    return GenerativeSettings(
        task=Task(args.task),
        model_name=args.model_name,
        model_path=path,
        target_device=args.target_device,
        plugin_config=plugin_config,
        cache_dir=cache_dir,
        text=text,
        embedding=embedding,
        gguf_filename=args.gguf_filename,
        chat_template_file=args.chat_template_file,
    )


def locate_model(settings: GenerativeSettings) -> GenerativeSettings:
    """The settings with ``model_path`` at what GenAI loads: the GenAI directory, or the .gguf
    file (the one in the directory, or --gguf_filename's). Files that are neither raise
    ConfigError naming what was found (Model Server, too, exits 1 on a model it cannot read)."""
    try:
        location = model_location(settings.model_path, settings.task.value, settings.gguf_filename)
    except LayoutError as error:
        raise ConfigError(f"model {settings.model_name}: {error}") from None
    text = replace(settings.text, chat_template=_chat_template(settings, location))
    return replace(settings, model_path=location, gguf_filename=None, text=text)


def _chat_template(settings: GenerativeSettings, location: Path) -> str | None:
    """--chat_template_file's text, else Model Server's chat_template.jinja beside the model,
    else None (the model's own template)."""
    named = settings.chat_template_file
    beside = (location if location.is_dir() else location.parent) / CHAT_TEMPLATE_FILE
    path = Path(named) if named else beside if beside.is_file() else None
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"model {settings.model_name}: chat template {path} cannot be read: {error}"
        ) from None


def _default(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def uses_continuous_batching(text: TextGenerationSettings, device: str) -> bool:
    """AUTO: continuous batching wherever GenAI has it, which is everywhere but NPU."""
    if text.pipeline_type is PipelineType.AUTO:
        return "NPU" not in device
    return text.pipeline_type is PipelineType.LM_CB


def check_for_device(settings: GenerativeSettings, device: str) -> None:
    """Settings that only one kind of pipeline has, refused where the other one serves."""
    if settings.text.max_prompt_len is not None and uses_continuous_batching(settings.text, device):
        raise UsageError(
            f"--max_prompt_len bounds the prompts of an NPU pipeline (LLMPipeline); on {device} "
            "continuous batching serves, which has no such bound: drop it, or give "
            "--pipeline_type LM"
        )
