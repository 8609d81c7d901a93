"""The node itself: Ready, and a pod runs on it."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e


def test_the_node_is_ready_and_runs_a_pod(e2e: Cluster) -> None:
    nodes = e2e.plane.kubectl("get", "nodes", "-o", "name").stdout.split()
    assert nodes == ["node/kv-node"]
