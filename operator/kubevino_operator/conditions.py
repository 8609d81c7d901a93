"""A condition's state before it is stamped with times and generations."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConditionState:
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str
