"""Reading the test API server's audit log: what one user asked of it, and when."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from kubevino_operator.rbac import NAME

OPERATOR_NAMESPACE = "kubevino-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{NAME}"
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def requests_by(
    audit_log: Path,
    user: str,
    since: float,
    until: float = float("inf"),
    verbs: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """The user's completed requests received in [since, until) (Unix time), oldest first."""
    found = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        if event.get("user", {}).get("username") != user:
            continue
        if event.get("stage") != "ResponseComplete":
            continue
        if verbs is not None and event.get("verb") not in verbs:
            continue
        stamp = event["requestReceivedTimestamp"].replace("Z", "+00:00")
        if since <= datetime.fromisoformat(stamp).timestamp() < until:
            found.append(
                {
                    "verb": event["verb"],
                    "uri": event["requestURI"],
                    "resource": (event.get("objectRef") or {}).get("resource", ""),
                    "subresource": (event.get("objectRef") or {}).get("subresource", ""),
                }
            )
    return found


def operator_writes(audit_log: Path, since: float) -> list[dict[str, Any]]:
    return requests_by(audit_log, OPERATOR_USER, since, verbs=WRITES)


def tally(requests: list[dict[str, Any]]) -> Counter[str]:
    """``verb resource[/subresource]`` → how many."""
    return Counter(
        f"{r['verb']} {r['resource']}" + (f"/{r['subresource']}" if r["subresource"] else "")
        for r in requests
    )
