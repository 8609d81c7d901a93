"""Model repository in Model Server's layout: ``<base_path>/<version>/<model files>``.

Also reads Model Server's ``config.json`` (``model_config_list``) so the same file drives the
kubevino runtime and a stock Model Server image.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kubevino_runtime.parity import BY_KEY, ENTRY, Kind, Status, refuse
from kubevino_runtime.preprocessing import (
    Preprocessing,
    PreprocessingError,
    parse_layout_setting,
)

log = logging.getLogger("kubevino.repository")

MODEL_FILE_SUFFIXES = (".xml", ".onnx", ".tflite", ".pdmodel", ".pb")
CLOUD_SCHEMES = ("gs://", "s3://", "azure://")


class ConfigError(ValueError):
    """A configuration that cannot be served; the message names the model and the field."""


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    target_device: str = ""  # empty: the recommended device, chosen when the config is read
    plugin_config: dict[str, Any] = field(default_factory=dict)
    nireq: int | None = None
    batch_size: str | None = None  # "4", "-1" or "1:8"
    shape: str | dict[str, str] | None = None
    version_policy: dict[str, Any] = field(default_factory=lambda: {"latest": {"num_versions": 1}})
    preprocessing: Preprocessing = field(default_factory=Preprocessing)


@dataclass(frozen=True)
class MetricsSetting:
    """config.json's monitoring.metrics: whether /metrics serves and, when listed, which
    families (None: the default set)."""

    enabled: bool
    families: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ServingConfig:
    models: list[ModelConfig]
    metrics: MetricsSetting | None = None  # None: config.json has no monitoring section


def _policy(raw: Any, name: str) -> dict[str, Any]:
    if raw is None:
        return {"latest": {"num_versions": 1}}
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ConfigError(f"model {name}: model_version_policy needs one of latest, specific, all")
    ((kind, body),) = raw.items()
    if kind == "all":
        return {"all": {}}
    if kind == "latest":
        count = (body or {}).get("num_versions", 1)
        if not isinstance(count, int) or count < 1:
            raise ConfigError(f"model {name}: latest.num_versions must be a positive integer")
        return {"latest": {"num_versions": count}}
    if kind == "specific":
        versions = (body or {}).get("versions")
        if (
            not isinstance(versions, list)
            or not versions
            or not all(isinstance(v, int) and v > 0 for v in versions)
        ):
            raise ConfigError(f"model {name}: specific.versions must list positive integers")
        return {"specific": {"versions": sorted(set(versions))}}
    raise ConfigError(f"model {name}: unknown model_version_policy {kind!r}")


def parse_json_object(text: str | None, flag: str) -> dict[str, Any] | None:
    """A command-line flag holding a JSON object (``--plugin_config``, version policy)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{flag} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object")
    return value


def parse_shape(text: str | None) -> str | dict[str, str] | None:
    if not text:
        return None
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as error:
            raise ConfigError(f"shape is not JSON: {error}") from None
        return {str(k): str(v) for k, v in value.items()}
    return text


def _refuse_auto_shape(shape: str | dict[str, str] | None, subject: str) -> None:
    values = shape.values() if isinstance(shape, dict) else [shape]
    if any(isinstance(value, str) and value.strip().lower() == "auto" for value in values):
        raise refuse(
            subject,
            "auto asks for a reload at every new request shape, which kubevino-serve does not "
            "do (Model Server deprecated it)",
            "give the dimensions that vary as -1 or as a min:max range, e.g. (-1,3,224,224)",
        )


_BATCH = re.compile(r"^(-1|[1-9][0-9]*|[1-9][0-9]*:[1-9][0-9]*)$")


def _batch_size(raw: Any, subject: str, name: str) -> str | None:
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if text.lower() == "auto":
        raise refuse(
            subject,
            "auto asks for a reload at every new batch size, which kubevino-serve does not do "
            "(Model Server deprecated it)",
            "give -1 for any batch size or a min:max range",
        )
    if isinstance(raw, bool) or not _BATCH.match(text):
        raise ConfigError(f"model {name}: batch_size must be a positive number, -1 or min:max")
    low, _, high = text.partition(":")
    if high and int(high) < int(low):
        raise ConfigError(f"model {name}: batch_size range {text} ends below its start")
    return text


Subject = Callable[[str], str]
ENTRY_PATH: Final = "model_config_list[{}].config."


def model_config_from_entry(
    entry: Any, index: int, config_dir: Path | None = None, subject: Subject | None = None
) -> ModelConfig:
    """One ``model_config_list`` entry; ``config_dir`` resolves relative base paths, as Model
    Server does; ``subject`` names a field in messages (default: its config.json path).
    Refused fields raise UsageError, malformed ones ConfigError."""
    if not isinstance(entry, dict) or set(entry) != {"config"}:
        raise ConfigError(f"model_config_list[{index}] must be an object with only 'config'")
    config = entry["config"]
    if not isinstance(config, dict):
        raise ConfigError(f"model_config_list[{index}] needs a 'config' object")

    def default_subject(key: str) -> str:
        return ENTRY_PATH.format(index) + key

    where = subject or default_subject
    for key in config:
        borrowed = BY_KEY.get((Kind.FIELD, ENTRY + key))
        if borrowed is None:
            raise ConfigError(
                f"{where(key)} is not a field of Model Server's config.json (its schema "
                "refuses it too)"
            )
        if borrowed.status is Status.REFUSED:
            raise borrowed.refusal(where(key))
    name = config.get("name")
    base_path = config.get("base_path")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"model_config_list[{index}].config needs a 'name'")
    if not isinstance(base_path, str) or not base_path:
        raise ConfigError(f"model {name}: 'base_path' is required")
    if base_path.startswith(CLOUD_SCHEMES):
        raise refuse(
            where("base_path"),
            f"{base_path} is cloud storage, which kubevino-serve does not read",
            "fetch the files first (InferenceModel spec.model.source, or kubevino-fetch) and "
            "give their local path",
        )
    if config_dir is not None and not Path(base_path).is_absolute():
        base_path = str(config_dir / base_path)
    nireq = config.get("nireq")
    if nireq is not None and (isinstance(nireq, bool) or not isinstance(nireq, int) or nireq < 0):
        raise ConfigError(f"model {name}: nireq must be 0 (the optimal number) or more")
    plugin_config = config.get("plugin_config") or {}
    if not isinstance(plugin_config, dict):
        raise ConfigError(f"model {name}: plugin_config must be an object")
    target_device = config.get("target_device", "")
    if not isinstance(target_device, str):
        raise ConfigError(f"model {name}: target_device must be a string")
    shape = config.get("shape")
    if isinstance(shape, str):
        shape = parse_shape(shape)
    _refuse_auto_shape(shape, where("shape"))
    batch_size = _batch_size(config.get("batch_size"), where("batch_size"), name)
    if batch_size is not None and shape:
        # Model Server's rule: a shape says everything batch_size could.
        log.warning("model %s: shape is given, so batch_size %s is ignored", name, batch_size)
        batch_size = None
    try:
        preprocessing = (
            parse_layout_setting(config["layout"]) if "layout" in config else Preprocessing()
        )
    except PreprocessingError as error:
        raise ConfigError(f"model {name}: {error}") from None
    allow_cache = config.get("allow_cache", True)
    if not isinstance(allow_cache, bool):
        raise ConfigError(f"model {name}: allow_cache must be true or false")
    return ModelConfig(
        name=name,
        base_path=base_path,
        target_device=target_device.strip(),
        plugin_config=dict(plugin_config),
        nireq=nireq or None,
        batch_size=batch_size,
        shape=shape,
        version_policy=_policy(config.get("model_version_policy"), name),
        preprocessing=preprocessing,
    )


TOP_LEVEL: Final = {
    "model_config_list",
    "custom_loader_config_list",
    "pipeline_config_list",
    "custom_node_library_config_list",
    "mediapipe_config_list",
    "monitoring",
}


def config_file_path(path: Path) -> Path:
    """Like Model Server, a directory stands for the config.json inside it."""
    return path / "config.json" if path.is_dir() else path


def read_config_file(path: Path) -> ServingConfig:
    path = config_file_path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror}") from None
    except ValueError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: must be a JSON object")
    for key, value in document.items():
        if key not in TOP_LEVEL:
            raise ConfigError(f"{path}: {key} is not a field of Model Server's config.json")
        borrowed = BY_KEY.get((Kind.FIELD, key))
        # An empty list asks for nothing, so there is nothing to refuse.
        if borrowed is not None and borrowed.status is Status.REFUSED and value != []:
            raise borrowed.refusal(f"{path}: {key}")
    entries = document.get("model_config_list")
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: needs a 'model_config_list' array")
    configs = [
        model_config_from_entry(entry, index, path.parent, _in_file(path, index))
        for index, entry in enumerate(entries)
    ]
    names = [config.name for config in configs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"{path}: model names must be unique: {', '.join(duplicates)}")
    return ServingConfig(configs, _monitoring(document.get("monitoring"), path))


def _in_file(path: Path, index: int) -> Subject:
    def subject(key: str) -> str:
        return f"{path}: {ENTRY_PATH.format(index)}{key}"

    return subject


def _monitoring(raw: Any, path: Path) -> MetricsSetting | None:
    if raw is None:
        return None
    metrics = raw.get("metrics") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or set(raw) != {"metrics"} or not isinstance(metrics, dict):
        raise ConfigError(f'{path}: monitoring must be {{"metrics": {{"enable": ...}}}}')
    unknown = sorted(set(metrics) - {"enable", "metrics_list"})
    if unknown:
        raise ConfigError(
            f"{path}: monitoring.metrics.{unknown[0]} is not a field of Model Server's config.json"
        )
    enabled = metrics.get("enable")
    if not isinstance(enabled, bool):
        raise ConfigError(f"{path}: monitoring.metrics.enable must be true or false")
    families = metrics.get("metrics_list")
    if families is None:
        return MetricsSetting(enabled)
    if not isinstance(families, list) or not all(isinstance(name, str) for name in families):
        raise ConfigError(f"{path}: monitoring.metrics.metrics_list must be an array of names")
    return MetricsSetting(enabled, tuple(families))


def find_model_file(version_dir: Path) -> Path | None:
    """The file (or SavedModel directory) OpenVINO reads in a version directory."""
    if (version_dir / "saved_model.pb").is_file():
        return version_dir
    candidates = sorted(
        path
        for path in version_dir.iterdir()
        if path.is_file() and path.suffix in MODEL_FILE_SUFFIXES and path.suffix != ".pb"
    )
    return candidates[0] if candidates else None


def discover_versions(base_path: Path) -> dict[int, Path]:
    """Version number → model file, for every numeric directory holding a readable model; a
    base path that is itself a model file is version 1 (Model Server since 2026.3)."""
    found: dict[int, Path] = {}
    if base_path.is_file() and base_path.suffix in MODEL_FILE_SUFFIXES:
        return {1: base_path}
    if not base_path.is_dir():
        return found
    for child in base_path.iterdir():
        if not (child.is_dir() and child.name.isdigit() and int(child.name) > 0):
            continue
        model_file = find_model_file(child)
        if model_file is not None:
            found[int(child.name)] = model_file
    return found


def select_versions(available: set[int], policy: dict[str, Any]) -> set[int]:
    if "all" in policy:
        return set(available)
    if "specific" in policy:
        return available & set(policy["specific"]["versions"])
    count = policy.get("latest", {}).get("num_versions", 1)
    return set(sorted(available)[-count:])
