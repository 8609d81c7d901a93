"""What GitOps tools read from the statuses the operator writes: Argo CD's Lua health check
(examples/gitops/argocd-health.lua, run in a real Lua) and Flux's kstatus rules."""

from __future__ import annotations

from typing import Any

import lupa
import pytest

from kubevino_operator.resolve import Refusal
from kubevino_operator.status import build_status
from tests.unit.builders import REPO, model, rendered
from tests.unit.test_status import deployment

LUA_CHECK = (REPO / "examples" / "gitops" / "argocd-health.lua").read_text()
T0 = "2026-11-23T00:00:00Z"


def _object(status: dict[str, Any], generation: int = 3) -> dict[str, Any]:
    return {"metadata": {"name": "m", "generation": generation}, "status": status}


def _to_lua(runtime: lupa.LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def argo_health(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(LUA_CHECK)
    return str(result["status"]), str(result["message"] or "")


def kstatus(obj: dict[str, Any]) -> str:
    """cli-utils kstatus for a custom resource, as Flux applies it."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return "InProgress"
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    if conditions.get("Stalled", {}).get("status") == "True":
        return "Failed"
    if conditions.get("Reconciling", {}).get("status") == "True":
        return "InProgress"
    if conditions.get("Ready", {}).get("status") == "False":
        return "InProgress"
    return "Current"


SERVING = build_status(
    generation=3, previous=None, now=T0, rendered=rendered(model()), deployment=deployment(2, 2)
)
ROLLING = build_status(
    generation=3, previous=None, now=T0, rendered=rendered(model()), deployment=deployment(2, 1)
)
REFUSED = build_status(
    generation=3,
    previous=None,
    now=T0,
    rendered=Refusal("PrivilegeNotAllowed", "set allowPrivileged"),
    deployment=None,
)
STUCK = build_status(
    generation=3,
    previous=None,
    now=T0,
    rendered=rendered(model()),
    deployment=deployment(1, 0, progress_reason="ProgressDeadlineExceeded"),
)


@pytest.mark.parametrize(
    ("status", "generation", "argo", "flux"),
    [
        (SERVING, 3, "Healthy", "Current"),
        (ROLLING, 3, "Progressing", "InProgress"),
        (REFUSED, 3, "Degraded", "Failed"),
        (STUCK, 3, "Degraded", "Failed"),
        (SERVING, 4, "Progressing", "InProgress"),  # the operator has not seen the new spec
        ({}, 1, "Progressing", "InProgress"),
    ],
)
def test_argo_cd_and_flux_read_the_same_health(
    status: dict[str, Any], generation: int, argo: str, flux: str
) -> None:
    obj = _object(status, generation)
    assert argo_health(obj)[0] == argo
    assert kstatus(obj) == flux


def test_the_argo_message_carries_the_reason() -> None:
    assert argo_health(_object(REFUSED))[1] == "PrivilegeNotAllowed: set allowPrivileged"
