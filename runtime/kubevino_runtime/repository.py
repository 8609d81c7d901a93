"""Model repository in Model Server's layout: ``<base_path>/<version>/<model files>``.

Also reads Model Server's ``config.json`` (``model_config_list``) so the same file drives the
kubevino runtime and a stock Model Server image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_FILE_SUFFIXES = (".xml", ".onnx", ".tflite", ".pdmodel", ".pb")


class ConfigError(ValueError):
    """A configuration that cannot be served; the message names the model and the field."""


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    target_device: str = "CPU"
    plugin_config: dict[str, Any] = field(default_factory=dict)
    nireq: int | None = None
    batch_size: str | None = None
    shape: str | dict[str, str] | None = None
    version_policy: dict[str, Any] = field(default_factory=lambda: {"latest": {"num_versions": 1}})


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


def model_config_from_entry(entry: Any, index: int) -> ModelConfig:
    config = entry.get("config") if isinstance(entry, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(f"model_config_list[{index}] needs a 'config' object")
    name = config.get("name")
    base_path = config.get("base_path")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"model_config_list[{index}].config needs a 'name'")
    if not isinstance(base_path, str) or not base_path:
        raise ConfigError(f"model {name}: 'base_path' is required")
    nireq = config.get("nireq")
    if nireq is not None and (not isinstance(nireq, int) or nireq < 1):
        raise ConfigError(f"model {name}: nireq must be a positive integer")
    plugin_config = config.get("plugin_config") or {}
    if not isinstance(plugin_config, dict):
        raise ConfigError(f"model {name}: plugin_config must be an object")
    shape = config.get("shape")
    if isinstance(shape, str):
        shape = parse_shape(shape)
    batch = config.get("batch_size")
    return ModelConfig(
        name=name,
        base_path=base_path,
        target_device=str(config.get("target_device") or "CPU"),
        plugin_config=dict(plugin_config),
        nireq=nireq,
        batch_size=None if batch in (None, "") else str(batch),
        shape=shape,
        version_policy=_policy(config.get("model_version_policy"), name),
    )


def read_config_file(path: Path) -> list[ModelConfig]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror}") from None
    except ValueError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from None
    entries = document.get("model_config_list") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: needs a 'model_config_list' array")
    configs = [model_config_from_entry(entry, index) for index, entry in enumerate(entries)]
    names = [config.name for config in configs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"{path}: model names must be unique: {', '.join(duplicates)}")
    return configs


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
    """Version number → model file, for every numeric directory holding a readable model."""
    found: dict[int, Path] = {}
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
