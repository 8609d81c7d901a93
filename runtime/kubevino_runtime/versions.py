"""The served models and their versions as the protocols look them up, without OpenVINO: a
front-end process imports this, never the engine's modules (docs/runtime-architecture.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kubevino_runtime.errors import ErrorKind, ServingError, not_found
from kubevino_runtime.repository import ModelConfig
from kubevino_runtime.served import ServedVersion

# Model Server's version numbers are int64.
MAX_VERSION = 2**63 - 1
_DECIMAL = re.compile("[0-9]+")


def parse_version(version: str | int | None) -> int | None:
    """A requested version: None (the latest) when absent, empty or 0, as in Model Server and
    KServe; a client error for anything but decimal digits (int() would also take " 1", "+1",
    "1_0" and non-ASCII digits); a version no model can have (past int64) is not found."""
    if version in (None, "", 0):
        return None
    text = str(version)
    if not _DECIMAL.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise ServingError(
            ErrorKind.INVALID, f"model version must be a positive integer, got {shown!r}"
        )
    digits = text.lstrip("0")
    if not digits:
        return None
    if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
        shown = digits if len(digits) <= 40 else digits[:40] + "…"
        raise not_found(f"no model has version {shown}: versions are at most {MAX_VERSION}")
    return int(digits)


@dataclass
class VersionStatus:
    state: str  # LOADING, AVAILABLE, LOADING_FAILED, UNLOADING, END (Model Server's states)
    error: str = ""


Version = TypeVar("Version", bound=ServedVersion)


@dataclass
class ServedModel(Generic[Version]):
    config: ModelConfig
    loaded: dict[int, Version] = field(default_factory=dict)
    status: dict[int, VersionStatus] = field(default_factory=dict)
    wanted: set[int] = field(default_factory=set)


class VersionLookup(Generic[Version]):
    """The served models and their versions as the protocols look them up: in the engine's
    process the registry itself, in a front end the engine's catalogue."""

    def __init__(self) -> None:
        self.models: dict[str, ServedModel[Version]] = {}
        self.refreshed_once = False
        self.shutting_down = False

    def model(self, name: str) -> ServedModel[Version]:
        served = self.models.get(name)
        if served is None:
            raise not_found(f"model {name} is not served here")
        return served

    def get(self, name: str, version: str | int | None) -> Version:
        served = self.model(name)
        number = parse_version(version)
        if number is None:
            if not served.loaded:
                raise ServingError(ErrorKind.UNAVAILABLE, f"model {name} has no loaded version yet")
            return served.loaded[max(served.loaded)]
        loaded = served.loaded.get(number)
        if loaded is not None:
            return loaded
        status = served.status.get(number)
        if status is not None and status.state == "LOADING":
            raise ServingError(ErrorKind.UNAVAILABLE, f"model {name} version {number} is loading")
        raise not_found(f"model {name} has no version {number}")

    def loaded_versions(self) -> list[Version]:
        return [version for served in self.models.values() for version in served.loaded.values()]

    def ready(self) -> bool:
        if self.shutting_down or not self.refreshed_once or not self.models:
            return False
        return all(
            served.wanted and served.wanted <= set(served.loaded) for served in self.models.values()
        )

    def not_ready_reasons(self) -> list[str]:
        return self._reasons(include_loading=True)

    def stuck_reasons(self) -> list[str]:
        """Why models are not ready that waiting will not fix (a model still loading is not
        stuck; a missing version or a failed load is, until the files change)."""
        return self._reasons(include_loading=False)

    def _reasons(self, *, include_loading: bool) -> list[str]:
        reasons = []
        for name, served in sorted(self.models.items()):
            if not served.wanted:
                reasons.append(f"model {name}: no version found in {served.config.base_path}")
            for number in sorted(served.wanted - set(served.loaded)):
                status = served.status.get(number, VersionStatus("LOADING"))
                if include_loading or status.state != "LOADING":
                    detail = f": {status.error}" if status.error else ""
                    reasons.append(f"model {name} version {number}: {status.state}{detail}")
        return reasons
