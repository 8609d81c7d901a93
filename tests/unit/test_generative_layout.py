"""What a generative model's directory holds, as kubevino-serve (``--model_path``,
``--gguf_filename``) and kubevino-fetch (``--task``: InvalidModel) read it alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubevino_runtime import startup
from kubevino_runtime.fetch import FetchError, check_generative
from kubevino_runtime.generative.layout import LayoutError, model_location
from kubevino_runtime.generative.settings import locate_model, settings_from_args
from kubevino_runtime.repository import ConfigError

GENAI_TEXT = ("openvino_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml")


def files(directory: Path, *names: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(b"x")
    return directory


def test_a_genai_directory_is_served_as_the_directory(tmp_path: Path) -> None:
    directory = files(tmp_path / "m", *GENAI_TEXT, "config.json", "openvino_model.bin")
    assert model_location(directory, "text_generation") == directory
    # Encoders only encode: no detokenizer needed.
    encoder = files(tmp_path / "e", "openvino_model.xml", "openvino_tokenizer.xml")
    assert model_location(encoder, "embeddings") == encoder
    assert model_location(encoder, "rerank") == encoder


def test_a_directory_with_one_gguf_serves_that_file_and_a_direct_path_still_works(
    tmp_path: Path,
) -> None:
    directory = files(tmp_path / "m", "qwen-q4_k_m.GGUF", "README.md")
    assert model_location(directory, "text_generation") == directory / "qwen-q4_k_m.GGUF"
    assert model_location(directory / "qwen-q4_k_m.GGUF", "text_generation") == (
        directory / "qwen-q4_k_m.GGUF"
    )


def test_where_the_server_does_not_find_a_gguf_the_name_is_asked_for(tmp_path: Path) -> None:
    directory = files(tmp_path / "m", "tiny.gguf")
    with pytest.raises(LayoutError) as error:
        model_location(directory, "text_generation", finds_gguf=False)
    assert str(error.value) == (
        f"--model_path {directory} holds the GGUF model tiny.gguf, which Model Server reads "
        "only when --gguf_filename names it: set spec.model.ggufFile: tiny.gguf"
    )
    named = model_location(directory, "text_generation", "tiny.gguf", finds_gguf=False)
    assert named == directory / "tiny.gguf"


def test_several_gguf_files_need_the_one_named(tmp_path: Path) -> None:
    directory = files(tmp_path / "m", "a-q4.gguf", "a-q8.gguf")
    with pytest.raises(LayoutError) as error:
        model_location(directory, "text_generation")
    assert str(error.value) == (
        f"--model_path {directory} holds 2 .gguf files (a-q4.gguf, a-q8.gguf): name the one "
        "to serve (--gguf_filename; spec.model.ggufFile in an InferenceModel)"
    )
    assert model_location(directory, "text_generation", "a-q8.gguf") == directory / "a-q8.gguf"
    with pytest.raises(LayoutError, match=r"holds no a-q2.gguf; it holds a-q4.gguf, a-q8.gguf"):
        model_location(directory, "text_generation", "a-q2.gguf")
    for escape in ("../a-q4.gguf", "a-q4.bin"):
        with pytest.raises(LayoutError, match=r"must name a \.gguf file inside the model"):
            model_location(directory, "text_generation", escape)


def test_gguf_serves_text_generation_only(tmp_path: Path) -> None:
    directory = files(tmp_path / "m", "model.gguf")
    for task in ("embeddings", "rerank"):
        with pytest.raises(LayoutError, match=f"text_generation only .*not {task}"):
            model_location(directory, task)


def test_what_is_neither_says_what_it_holds_and_what_to_do(tmp_path: Path) -> None:
    hub = files(tmp_path / "hub", "config.json", "model.safetensors", "tokenizer.json")
    with pytest.raises(LayoutError) as error:
        model_location(hub, "text_generation")
    assert str(error.value) == (
        f"--model_path {hub} holds no OpenVINO GenAI model (no openvino_model.xml, "
        "openvino_tokenizer.xml, openvino_detokenizer.xml) and no .gguf file; it holds "
        "config.json, model.safetensors, tokenizer.json. Export the model with `optimum-cli "
        "export openvino` (which writes the tokenizer and detokenizer IRs too), or serve a "
        ".gguf file"
    )
    no_detokenizer = files(tmp_path / "nd", "openvino_model.xml", "openvino_tokenizer.xml")
    with pytest.raises(LayoutError, match=r"\(no openvino_detokenizer.xml\)"):
        model_location(no_detokenizer, "text_generation")
    versions = files(tmp_path / "v", "1/openvino_model.xml", "2/openvino_model.xml")
    with pytest.raises(LayoutError, match=r"holds version folders \(1/, 2/\).*point the model"):
        model_location(versions, "embeddings")
    with pytest.raises(LayoutError, match="is empty"):
        model_location(files(tmp_path / "empty"), "rerank")
    with pytest.raises(LayoutError, match="does not exist"):
        model_location(tmp_path / "nowhere", "rerank")
    with pytest.raises(LayoutError, match=r"is a file but not a \.gguf file"):
        model_location(hub / "config.json", "text_generation")


def test_kubevino_serve_locates_the_model_before_loading_and_fails_start_with_the_reason(
    tmp_path: Path,
) -> None:
    directory = files(tmp_path / "m", "one.gguf", "two.gguf")
    base = ["--model_path", str(directory), "--model_name", "llm", "--task", "text_generation"]
    chosen = locate_model(
        settings_from_args(startup.parse_arguments([*base, "--gguf_filename", "two.gguf"]), None)
    )
    assert chosen.model_path == directory / "two.gguf" and chosen.gguf_filename is None
    with pytest.raises(ConfigError, match=r"^model llm: --model_path .* holds 2 .gguf files"):
        locate_model(settings_from_args(startup.parse_arguments(base), None))


def test_the_fetch_checks_version_1_is_what_the_task_serves(tmp_path: Path) -> None:
    source = "https://models.example/llm.tar.gz"
    good = files(tmp_path / "good", "1/tiny.gguf")
    check_generative(good, "text_generation", None, source)
    check_generative(good, "text_generation", "tiny.gguf", source)
    with pytest.raises(FetchError) as error:
        check_generative(good, "embeddings", None, source)
    assert error.value.reason == "InvalidModel"
    assert str(error.value).startswith(f"{source} (version 1) is a GGUF model: GGUF files serve")
    hub = files(tmp_path / "hub", "1/config.json", "1/model.safetensors")
    with pytest.raises(FetchError, match=r"\(version 1\) holds no OpenVINO GenAI model"):
        check_generative(hub, "rerank", None, source)
    later = files(tmp_path / "later", "2/openvino_model.xml", "3/openvino_model.xml")
    with pytest.raises(FetchError) as error:
        check_generative(later, "embeddings", None, source)
    assert str(error.value) == (
        f"{source}: a generative model is served from version 1 (the files without version "
        "folders land there), and the download has versions 2, 3"
    )
