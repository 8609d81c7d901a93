"""Replicas of one model on several nodes.

The default topology spread puts two replicas on two nodes; the Service's cluster IP reaches
both through kube-proxy (each pod's own request counter says it served some of the requests,
sent from the first node's namespace to pods elsewhere); draining a node that runs one of them
evicts it through the PodDisruptionBudget, and the model stays Ready all along.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kubevino_runtime.demo_model import sample_input
from tests.cluster.conftest import condition, get, wait_until
from tests.e2e.helpers import port_forward
from tests.e2e.multinode.common import apply, delete_models, pods, ready
from tests.e2e.multinode.conftest import MODELS, Installed

pytestmark = pytest.mark.e2e

NAME = "spread"
REQUESTS = 40
SERVED = "ovms_requests_success"


@pytest.fixture(scope="module")
def spread(installed: Installed) -> Iterator[Installed]:
    apply(installed, NAME, "CPU", replicas=2)
    try:
        ready(installed.cluster, NAME)
        yield installed
    finally:
        delete_models(installed.cluster, NAME)


def _served(installed: Installed, pod: dict[str, Any]) -> float:
    """Requests this one pod answered, from its own /metrics."""
    name = pod["metadata"]["name"]
    with port_forward(installed.cluster.plane, MODELS, f"pod/{name}", 8000) as (rest,):
        text = httpx.get(f"http://127.0.0.1:{rest}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{SERVED}{{") or line.startswith(f"{SERVED} ")
    )


def test_two_replicas_on_two_nodes_both_reached_through_the_service(spread: Installed) -> None:
    cluster = spread.cluster
    serving = pods(cluster, NAME)
    assert len({pod["spec"]["nodeName"] for pod in serving}) == 2, "spread over two nodes"
    before = {pod["metadata"]["name"]: _served(spread, pod) for pod in serving}
    service = get(cluster.plane, "service", NAME, MODELS)
    assert service is not None
    address = f"http://{service['spec']['clusterIP']}:8000/v1/models/classifier:predict"
    body = {"instances": sample_input().tolist()}
    for _ in range(REQUESTS):
        # A connection per request: kube-proxy picks an endpoint per connection.
        httpx.post(address, json=body, timeout=30).raise_for_status()
    answered = {
        pod["metadata"]["name"]: _served(spread, pod) - before[pod["metadata"]["name"]]
        for pod in serving
    }
    assert all(count > 0 for count in answered.values()), answered
    assert sum(answered.values()) == REQUESTS, answered


def _operator_node(installed: Installed) -> str:
    listed = installed.cluster.plane.kubectl(
        "get", "pods", "-n", "kubevino-system", "-l", "app.kubernetes.io/name=kubevino-operator",
        "-o", "jsonpath={.items[*].spec.nodeName}",
    )  # fmt: skip
    return listed.stdout.strip()


def test_draining_a_node_keeps_the_model_ready_through_its_disruption_budget(
    spread: Installed,
) -> None:
    cluster = spread.cluster
    plane = cluster.plane
    budget = get(plane, "poddisruptionbudget", NAME, MODELS)
    assert budget is not None and budget["spec"]["maxUnavailable"] == 1
    # A node with one of the model's pods, not the operator's (it would restart meanwhile).
    candidates = {pod["spec"]["nodeName"] for pod in pods(cluster, NAME)}
    drained = sorted(candidates - {_operator_node(spread)})[0]

    seen: list[tuple[str, str]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            found = condition(get(plane, "inferencemodel", NAME, MODELS), "Ready")
            seen.append((found.get("status", ""), found.get("message", "")))
            stop.wait(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        done = plane.kubectl(
            "drain", drained, "--ignore-daemonsets", "--delete-emptydir-data",
            "--timeout=180s", timeout=200,
        )  # fmt: skip
        assert f"evicting pod {MODELS}/{NAME}-" in done.stderr + done.stdout

        def replaced() -> list[dict[str, Any]] | None:
            now = pods(cluster, NAME)
            running = [p for p in now if condition(p, "Ready").get("status") == "True"]
            return now if len(running) == 2 else None

        now = wait_until(replaced, 180, "the evicted replica replaced on another node")
        assert drained not in {pod["spec"]["nodeName"] for pod in now}
    finally:
        stop.set()
        watcher.join()
        plane.kubectl("uncordon", drained, check=False)
    assert seen and all(status == "True" for status, _ in seen), seen
    # It was the budget's one pod away at some point, and Ready said so.
    assert any(message.startswith("1/2 pods serve") for _, message in seen), seen
