"""``kubevino node-agent``: report one node's accelerators on its Node object.

Runs as a DaemonSet pod with the node's ``/dev`` and ``/sys`` mounted read-only: it stats and
reads, never opens a device. Every interval it scans again and patches only what changed, so an
unchanged node costs one read.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from kubevino_operator.discovery import NodeDevices, scan
from kubevino_operator.kube import Kube, load_api_client

log = logging.getLogger("kubevino.nodeagent")


def _changes(wanted: dict[str, str | None], current: dict[str, str]) -> dict[str, str | None]:
    """The merge-patch entries that make ``current`` say ``wanted`` (None removes a key)."""
    return {
        key: value
        for key, value in wanted.items()
        if (value is None and key in current) or (value is not None and current.get(key) != value)
    }


def node_patch(devices: NodeDevices, node: dict[str, Any]) -> dict[str, Any] | None:
    """The patch that brings the Node's kubevino.io labels and annotations up to date."""
    metadata = node.get("metadata") or {}
    labels = _changes(devices.labels(), metadata.get("labels") or {})
    annotations = _changes(devices.annotations(), metadata.get("annotations") or {})
    if not labels and not annotations:
        return None
    changed: dict[str, Any] = {}
    if labels:
        changed["labels"] = labels
    if annotations:
        changed["annotations"] = annotations
    return {"metadata": changed}


def describe(devices: NodeDevices) -> str:
    if not devices.accelerators:
        return "no accelerator"
    parts = []
    for name in devices.accelerators:
        nodes = ", ".join(f"{n.path} (gid {n.gid}, {n.mode})" for n in devices.found[name])
        parts.append(f"{name}: {nodes}")
    if devices.usb_products:
        parts.append(f"USB {', '.join(devices.usb_products)}")
    return "; ".join(parts)


async def report_once(kube: Kube, node_name: str, device_root: Path, sys_root: Path) -> bool:
    """Scan and patch; True when the Node changed."""
    devices = scan(device_root, sys_root)
    node = await kube.get("v1", "Node", "", node_name)
    if node is None:
        raise RuntimeError(f"node {node_name} does not exist (is NODE_NAME right?)")
    patch = node_patch(devices, node)
    if patch is None:
        return False
    await kube.merge_patch("v1", "Node", "", node_name, patch)
    log.info("node %s: %s", node_name, describe(devices))
    return True


async def run_agent(
    node_name: str, device_root: Path, sys_root: Path, interval: float, once: bool
) -> int:
    kube = Kube(load_api_client())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("reporting %s's accelerators from %s and %s", node_name, device_root, sys_root)
    while True:
        try:
            await report_once(kube, node_name, device_root, sys_root)
        except Exception as error:
            if once:
                raise
            log.error("report failed, retrying in %.0f s: %s", interval, error)
        if once:
            return 0
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
        return 0
