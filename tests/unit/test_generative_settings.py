"""--task and the generation flags: Model Server's names and meanings, the values kubevino-serve
cannot honour refused at start (exit 64)."""

from __future__ import annotations

import pytest

from kubevino_runtime import startup
from kubevino_runtime.generative.pipelines import scheduler_config
from kubevino_runtime.generative.settings import (
    GenerativeSettings,
    PipelineType,
    Pooling,
    check_for_device,
    settings_from_args,
    uses_continuous_batching,
)
from kubevino_runtime.parity import UsageError

MODEL = ["--model_path", "/models/llm", "--model_name", "llm"]


def _settings(*flags: str) -> GenerativeSettings:
    return settings_from_args(startup.parse_arguments([*MODEL, *flags]), None)


def test_text_generation_flags_become_genais_scheduler_config() -> None:
    settings = _settings(
        "--task",
        "text_generation",
        "--max_num_seqs",
        "8",
        "--cache_size",
        "2",
        "--max_num_batched_tokens",
        "1024",
        "--enable_prefix_caching",
        "false",
        "--dynamic_split_fuse",
        "false",
    )
    config = scheduler_config(settings.text)
    assert (config.max_num_seqs, config.cache_size, config.max_num_batched_tokens) == (8, 2, 1024)
    assert not config.enable_prefix_caching
    assert not config.dynamic_split_fuse


def test_model_servers_defaults_hold_when_no_flag_is_given() -> None:
    settings = _settings("--task", "text_generation")
    config = scheduler_config(settings.text)
    assert (config.max_num_seqs, config.cache_size) == (256, 0)
    assert config.enable_prefix_caching and config.dynamic_split_fuse
    assert settings.text.pipeline_type is PipelineType.AUTO
    embedding = _settings("--task", "embeddings").embedding
    assert embedding.normalize and embedding.pooling is Pooling.CLS


def test_auto_batches_continuously_everywhere_but_npu() -> None:
    text = _settings("--task", "text_generation").text
    assert uses_continuous_batching(text, "CPU")
    assert uses_continuous_batching(text, "GPU.1")
    assert not uses_continuous_batching(text, "NPU")
    lm = _settings("--task", "text_generation", "--pipeline_type", "LM").text
    assert not uses_continuous_batching(lm, "CPU")


def test_max_prompt_len_is_for_npu_pipelines_only() -> None:
    settings = _settings("--task", "text_generation", "--max_prompt_len", "1024")
    check_for_device(settings, "NPU")
    with pytest.raises(UsageError, match="--max_prompt_len bounds the prompts of an NPU"):
        check_for_device(settings, "CPU")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max_num_seqs", "4"], "--max_num_seqs need --task"),
        (["--task", "image_generation"], "--task image_generation is a Model Server task"),
        (["--task", "chat"], "--task must be one of text_generation, embeddings, rerank"),
        (["--task", "text_generation", "--pipeline_type", "VLM"], "vision-language pipeline"),
        (["--task", "text_generation", "--pipeline_type", "FAST"], "--pipeline_type must be"),
        (["--task", "text_generation", "--enable_prefix_caching", "yes"], "must be true or false"),
        (["--task", "text_generation", "--kv_cache_precision", "f8"], "must be u8 or empty"),
        (["--task", "text_generation", "--max_num_seqs", "0"], "--max_num_seqs must be 1"),
        (["--task", "text_generation", "--cache_size", "-1"], "--cache_size must be 0"),
        (["--task", "embeddings", "--max_num_seqs", "4"], "apply to --task text_generation"),
        (["--task", "rerank", "--pooling", "MEAN"], "apply to --task embeddings"),
        (["--task", "embeddings", "--pooling", "MAX"], "--pooling must be one of CLS"),
        (["--task", "text_generation", "--shape", "(1,2)"], "describe an OpenVINO IR model"),
    ],
)
def test_generation_usage_errors(flags: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        startup.parse_arguments([*MODEL, *flags])


def test_task_does_not_go_with_config_path() -> None:
    with pytest.raises(UsageError, match="does not go with --config_path"):
        startup.parse_arguments(["--config_path", "c.json", "--task", "text_generation"])


def test_a_gguf_file_serves_text_generation_only() -> None:
    args = startup.parse_arguments(
        ["--model_path", "/m/model.gguf", "--model_name", "m", "--task", "embeddings"]
    )
    with pytest.raises(UsageError, match="GGUF files serve --task text_generation only"):
        settings_from_args(args, None)
