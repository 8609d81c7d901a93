"""Pure: which reconcile a model's watch event calls for, with no bookkeeping on the model.

kopf's create/update/resume handlers tell those apart by a copy of the last handled spec that
kopf patches onto every model after every handled change: one write per model the user gains
nothing from (and one more watch event for everyone watching models). The operator needs less:

* this process remembers the generation it last reconciled of each model (the API server bumps
  ``metadata.generation`` on every spec change, and only then);
* a model it has not reconciled yet (a new one, or every model at start-up) is judged by its
  status: the Ready condition's ``observedGeneration`` is the generation an earlier run of the
  operator last wrote a status for. Equal: resume (read and compare first, so an unchanged
  cluster costs no write). Older: the spec changed while no operator ran. No status: new.

Which of the three it is only decides whether reads come before the writes (``compare_first``)
and whether objects the model no longer renders are looked for (``prune``): every reconcile
applies whatever differs, so a wrong guess costs requests, never correctness.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubevino_operator.status import READY


@dataclass(frozen=True)
class Reconcile:
    compare_first: bool  # read each object first and write only what differs
    prune: bool  # delete optional objects the model owned but no longer renders


NEW = Reconcile(compare_first=False, prune=False)
CHANGED = Reconcile(compare_first=False, prune=True)
RESUMED = Reconcile(compare_first=True, prune=True)


@dataclass(frozen=True)
class Handled:
    """The version of a model this process reconciled last."""

    uid: str
    generation: int


def handled_version(body: Mapping[str, Any]) -> Handled:
    meta = body["metadata"]
    return Handled(str(meta.get("uid", "")), int(meta.get("generation") or 0))


def observed_generation(body: Mapping[str, Any]) -> int | None:
    """The generation the model's last status was written for (its Ready condition's)."""
    conditions = (body.get("status") or {}).get("conditions") or []
    ready: Mapping[str, Any] = next((c for c in conditions if c.get("type") == READY), {})
    observed = ready.get("observedGeneration")
    return int(observed) if observed is not None else None


def reconcile_for(body: Mapping[str, Any], handled: Handled | None) -> Reconcile | None:
    """What ``body`` (a model as the watch shows it) asks of this process, which last
    reconciled ``handled`` of it; None when nothing: a status write, a label, the model already
    reconciled at this generation, or being deleted (its objects go with it: owner
    references)."""
    if body["metadata"].get("deletionTimestamp"):
        return None
    now = handled_version(body)
    if handled is not None and handled.uid == now.uid:
        return CHANGED if now.generation > handled.generation else None
    observed = observed_generation(body)
    if observed is None:
        return NEW
    return RESUMED if observed == now.generation else CHANGED
