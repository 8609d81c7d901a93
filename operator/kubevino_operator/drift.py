"""Pure: does a live object already carry everything we would apply?

Applying an unchanged object is still a PATCH request; on a resync that would be hundreds of
writes for nothing. The API server adds defaults and other managers add their own fields, so
"already applied" means: every field we set is present with the same value (a recursive subset;
lists match item by item; 1 and "1" are the same quantity).
"""

from __future__ import annotations

from typing import Any

# Metadata the server or kopf manage; they never decide whether an apply is needed.
_IGNORED_METADATA = {"ownerReferences"}


def contains(live: Any, desired: Any) -> bool:
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(key in live and contains(live[key], value) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(contains(have, want) for have, want in zip(live, desired, strict=True))
    if isinstance(desired, bool) or isinstance(live, bool):
        return live is desired
    if (isinstance(desired, int | float) and isinstance(live, str)) or (
        isinstance(live, int | float) and isinstance(desired, str)
    ):
        return str(live) == str(desired)
    return bool(live == desired)


def already_applied(live: dict[str, Any] | None, desired: dict[str, Any]) -> bool:
    if live is None:
        return False
    metadata = {k: v for k, v in desired.get("metadata", {}).items() if k not in _IGNORED_METADATA}
    owners = desired.get("metadata", {}).get("ownerReferences") or []
    live_owners = {o.get("uid") for o in live.get("metadata", {}).get("ownerReferences") or []}
    if any(owner.get("uid") not in live_owners for owner in owners):
        return False
    body = {k: v for k, v in desired.items() if k != "metadata"}
    return contains(live, {**body, "metadata": metadata})
