"""What a generative model's directory holds: an OpenVINO GenAI model or one GGUF file.

kubevino-serve resolves ``--model_path`` (with ``--gguf_filename``) here before anything loads,
and kubevino-fetch checks a download here (``InvalidModel``), so both read a layout alike. No
OpenVINO import: the fetch init container runs this too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

GGUF_SUFFIX: Final = ".gguf"
TEXT_GENERATION: Final = "text_generation"
TOKENIZER_IR: Final = "openvino_tokenizer.xml"
DETOKENIZER_IR: Final = "openvino_detokenizer.xml"
# The network of an `optimum-cli export openvino` directory: openvino_model.xml, or the
# language model of a vision-language export (Model Server's VLM pipelines read those).
MODEL_IRS: Final = ("openvino_model.xml", "openvino_language_model.xml")
# Entries named in a message before "and N more".
_NAMED: Final = 8
_VERSION_FOLDER = re.compile(r"^[0-9]+$")


class LayoutError(ValueError):
    """The files are not a model the task can serve; the message says what was found."""


def is_gguf(path: Path) -> bool:
    """Case-insensitive, as Model Server's own check."""
    return path.suffix.lower() == GGUF_SUFFIX


def _entries(directory: Path) -> list[Path]:
    return sorted(child for child in directory.iterdir() if not child.name.startswith("."))


def _listing(entries: list[Path]) -> str:
    names = [entry.name + ("/" if entry.is_dir() else "") for entry in entries]
    shown = ", ".join(names[:_NAMED])
    return shown + (f" and {len(names) - _NAMED} more" if len(names) > _NAMED else "")


def missing_genai_files(directory: Path, task: str) -> list[str]:
    """The files an OpenVINO GenAI pipeline of ``task`` reads that ``directory`` lacks."""
    missing = [] if any((directory / ir).is_file() for ir in MODEL_IRS) else [MODEL_IRS[0]]
    # Embeddings and rerank only encode; text generation also decodes what it generates.
    wanted = (TOKENIZER_IR, DETOKENIZER_IR) if task == TEXT_GENERATION else (TOKENIZER_IR,)
    return missing + [name for name in wanted if not (directory / name).is_file()]


def model_location(
    model_path: Path,
    task: str,
    gguf_filename: str | None = None,
    where: str | None = None,
    *,
    finds_gguf: bool = True,
) -> Path:
    """What GenAI loads for ``task``: ``model_path`` as a GenAI directory, a .gguf file
    (``model_path`` itself, the one in it, or ``gguf_filename`` in it), or LayoutError.

    ``where`` names ``model_path`` in messages (default ``--model_path <path>``).
    ``finds_gguf``: whether the server finds a directory's one .gguf by itself (kubevino-serve
    does; Model Server reads a directory as a GenAI model unless --gguf_filename names it).
    """
    where = where or f"--model_path {model_path}"
    if gguf_filename is not None:
        return _named_gguf(model_path, task, gguf_filename, where)
    if model_path.is_file():
        if not is_gguf(model_path):
            raise LayoutError(
                f"{where} is a file but not a .gguf file: give the directory of an OpenVINO "
                "GenAI model, or one .gguf file"
            )
        _gguf_serves(task, where)
        return model_path
    if not model_path.is_dir():
        raise LayoutError(f"{where} does not exist")
    missing = missing_genai_files(model_path, task)
    if not missing:
        return model_path
    entries = _entries(model_path)
    ggufs = [entry for entry in entries if entry.is_file() and is_gguf(entry)]
    if len(ggufs) == 1 and finds_gguf:
        _gguf_serves(task, where)
        return ggufs[0]
    if len(ggufs) == 1:
        raise LayoutError(
            f"{where} holds the GGUF model {ggufs[0].name}, which Model Server reads only when "
            f"--gguf_filename names it: set spec.model.ggufFile: {ggufs[0].name}"
        )
    if ggufs:
        raise LayoutError(
            f"{where} holds {len(ggufs)} .gguf files ({_listing(ggufs)}): name the one to "
            "serve (--gguf_filename; spec.model.ggufFile in an InferenceModel)"
        )
    if not entries:
        raise LayoutError(f"{where} is empty: no OpenVINO GenAI model and no .gguf file")
    versions = [entry for entry in entries if entry.is_dir() and _VERSION_FOLDER.match(entry.name)]
    if versions and len(versions) == len(entries):
        raise LayoutError(
            f"{where} holds version folders ({_listing(versions)}), Model Server's layout of "
            "tensor models; a generative model is one directory without versions: point the "
            "model path at the folder that holds the model's files"
        )
    raise LayoutError(
        f"{where} holds no OpenVINO GenAI model (no {', '.join(missing)}) and no .gguf file; "
        f"it holds {_listing(entries)}. Export the model with `optimum-cli export openvino` "
        "(which writes the tokenizer and detokenizer IRs too), or serve a .gguf file"
    )


def _named_gguf(directory: Path, task: str, gguf_filename: str, where: str) -> Path:
    if "/" in gguf_filename or gguf_filename in (".", "..") or not is_gguf(Path(gguf_filename)):
        raise LayoutError(
            f"--gguf_filename {gguf_filename!r} must name a .gguf file inside the model "
            "directory, without a path"
        )
    _gguf_serves(task, where)
    if not directory.is_dir():
        raise LayoutError(f"{where} is not a directory (--gguf_filename names a file in one)")
    chosen = directory / gguf_filename
    if not chosen.is_file():
        entries = _entries(directory)
        found = _listing(entries) if entries else "nothing"
        raise LayoutError(f"{where} holds no {gguf_filename}; it holds {found}")
    return chosen


def _gguf_serves(task: str, where: str) -> None:
    if task != TEXT_GENERATION:
        raise LayoutError(
            f"{where} is a GGUF model: GGUF files serve --task text_generation only (OpenVINO "
            f"GenAI reads no other task from them), not {task}"
        )
