"""What serving kubevino-serve pods say of their generative pipeline, read once per pod template.

kubevino-serve publishes the pipeline it built, the device it compiled for and the model's
context length under ``/kubevino/diagnostics`` (section ``generative``). The operator asks one
ready pod of the Deployment's serving template, in the background with a short timeout, and
keeps the answer for that template: a pod that does not answer (a NetworkPolicy, a restart) is
not asked again, and the status keeps what the render implies meanwhile. Nothing here blocks or
fails a reconcile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from kubevino_operator.watched import TEMPLATE_HASH_LABEL, ModelKey

log = logging.getLogger(__name__)

DIAGNOSTICS_PATH: Final = "/kubevino/diagnostics"
READ_TIMEOUT_SECONDS: Final = 3.0


@dataclass(frozen=True)
class PodToAsk:
    uid: str
    ip: str
    template: str


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _template(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get(TEMPLATE_HASH_LABEL, ""))


def serving_template(pods: list[dict[str, Any]]) -> str | None:
    """The pod template every ready pod runs; None with no ready pod, or mid-rollout (ready
    pods of two templates), when the answer would soon be stale."""
    ready = [pod for pod in pods if _ready(pod) and not pod["metadata"].get("deletionTimestamp")]
    templates = {_template(pod) for pod in ready}
    if len(templates) != 1 or "" in templates:
        return None
    return templates.pop()


@dataclass
class _Memory:
    template: str = ""
    report: dict[str, Any] | None = None
    asked: set[str] = field(default_factory=set)  # pod uids asked for this template


class PipelineReports:
    """Per model: the serving template's report, and the pods already asked for it."""

    def __init__(self) -> None:
        self._memory: dict[ModelKey, _Memory] = {}

    def current(self, key: ModelKey, pods: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The report of the template the ready pods run, once one of them answered."""
        template = serving_template(pods)
        memory = self._memory.get(key)
        if template is None or memory is None or memory.template != template:
            return None
        return memory.report

    def pod_to_ask(self, key: ModelKey, pods: list[dict[str, Any]]) -> PodToAsk | None:
        """A ready pod of the serving template to ask, when its report is still missing and
        that pod was not asked yet (it is marked asked)."""
        template = serving_template(pods)
        if template is None:
            return None
        memory = self._memory.get(key)
        if memory is None or memory.template != template:
            memory = self._memory[key] = _Memory(template)
        if memory.report is not None:
            return None
        for pod in pods:
            uid, ip = pod["metadata"].get("uid", ""), (pod.get("status") or {}).get("podIP")
            if _ready(pod) and _template(pod) == template and ip and uid not in memory.asked:
                memory.asked.add(uid)
                return PodToAsk(uid, ip, template)
        return None

    def record(self, key: ModelKey, template: str, report: dict[str, Any]) -> bool:
        """Keep a pod's report; False when its template is no longer the one remembered."""
        memory = self._memory.get(key)
        if memory is None or memory.template != template:
            return False
        memory.report = report
        return True

    def keys(self) -> set[ModelKey]:
        return set(self._memory)

    def forget(self, key: ModelKey) -> None:
        self._memory.pop(key, None)


async def read_pipeline_report(ip: str, port: int) -> dict[str, Any] | None:
    """The ``generative`` section of a pod's diagnostics; None when it cannot be read."""
    host = f"[{ip}]" if ":" in ip else ip  # an IPv6 pod address
    url = f"http://{host}:{port}{DIAGNOSTICS_PATH}"
    try:
        timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT_SECONDS)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url) as response,
        ):
            response.raise_for_status()
            body = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        log.info("%s did not answer: %s", url, error or type(error).__name__)
        return None
    section = body.get("generative") if isinstance(body, dict) else None
    return section if isinstance(section, dict) else None
