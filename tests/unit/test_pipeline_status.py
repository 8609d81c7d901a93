"""status.pipeline: what a generative model's pods report of their GenAI pipeline (asked once
per pod template), or what the render implies where no pod reports it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from kubevino_devcluster.ports import free_ports
from kubevino_operator.podreports import (
    PipelineReports,
    PodToAsk,
    read_pipeline_report,
    serving_template,
)
from kubevino_operator.status import build_status, pipeline_status, status_patch
from kubevino_operator.watched import pod_view
from tests.unit.builders import model, rendered

PVC = {"pvc": {"claimName": "models"}}
KEY = ("ml", "llm")
LOADED = {
    "name": "llm",
    "task": "text_generation",
    "format": "GGUF",
    "device": "CPU",
    "state": "Loaded",
    "pipeline": "ContinuousBatchingPipeline",
    "contextLength": 2048,
}


def generative(task: str, target: str = "CPU", runtime: str = "Kubevino") -> Any:
    spec: dict[str, Any] = {}
    if target == "NPU":  # its static pipeline is compiled for fixed lengths
        lengths = {"maxPromptLength": 1024, "minResponseLength": 128}
        spec["generation"] = {"textGeneration": lengths}
    return rendered(
        model(
            "llm",
            model={"task": task, "source": PVC},
            device={"targetDevice": target},
            serving={"runtime": runtime},
            **spec,
        )
    )


def pod(
    name: str, template: str, ready: bool = True, ip: str | None = "10.0.0.7"
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    return pod_view(
        {
            "metadata": {
                "name": name,
                "uid": f"uid-{name}",
                "labels": {"pod-template-hash": template, "app": "x"},
            },
            "spec": {"nodeName": "n1"},
            "status": status,
        }
    )


def test_a_pods_report_gives_pipeline_device_and_context_length() -> None:
    assert pipeline_status(generative("TextGeneration"), LOADED) == {
        "name": "ContinuousBatchingPipeline",
        "device": "CPU",
        "contextLength": 2048,
        "reportedBy": "Pod",
    }


def test_without_a_report_the_render_says_which_pipeline_without_a_context_length() -> None:
    assert pipeline_status(generative("TextGeneration", "NPU", "ModelServer"), None) == {
        "name": "LLMPipeline",
        "device": "NPU",
        "reportedBy": "Render",
    }
    assert pipeline_status(generative("Embeddings", "GPU"), None) == {
        "name": "TextEmbeddingPipeline",
        "device": "GPU",
        "reportedBy": "Render",
    }
    assert pipeline_status(generative("Rerank"), None)["name"] == "TextRerankPipeline"  # type: ignore[index]
    assert pipeline_status(rendered(model()), LOADED) is None  # a Tensor model has none


def test_a_report_that_is_not_a_loaded_pipeline_of_this_task_is_not_believed() -> None:
    subject = generative("TextGeneration")
    for odd in (
        {**LOADED, "state": "Loading"},
        {**LOADED, "task": "embeddings"},
        {**LOADED, "pipeline": 7},
        {"unexpected": True},
    ):
        assert pipeline_status(subject, odd)["reportedBy"] == "Render", odd  # type: ignore[index]
    no_length = pipeline_status(subject, {**LOADED, "contextLength": True})
    assert no_length is not None and "contextLength" not in no_length


def test_the_status_carries_it_and_drops_it_when_the_model_stops_being_generative() -> None:
    now = "2026-01-01T00:00:00Z"
    status = build_status(
        generation=1,
        previous=None,
        now=now,
        rendered=generative("TextGeneration"),
        deployment=None,
        pipeline_report=LOADED,
    )
    assert status["pipeline"]["contextLength"] == 2048
    tensor = build_status(
        generation=2, previous=status, now=now, rendered=rendered(model("llm")), deployment=None
    )
    assert tensor["pipeline"] is None  # a merge patch's null: removed


def test_a_merge_patch_removes_what_a_changed_object_lost() -> None:
    before = {"pipeline": {"name": "LLMPipeline", "device": "NPU", "contextLength": 4096}, "x": 1}
    after = {"pipeline": {"name": "LLMPipeline", "device": "NPU"}, "x": 1}
    assert status_patch(before, after) == {
        "pipeline": {"name": "LLMPipeline", "device": "NPU", "contextLength": None}
    }
    assert status_patch(after, after) == {}


def test_one_ready_pod_of_the_serving_template_is_asked_once() -> None:
    reports = PipelineReports()
    pods = [pod("a", "t1"), pod("b", "t1")]
    assert serving_template(pods) == "t1"
    first = reports.pod_to_ask(KEY, pods)
    assert first == PodToAsk("uid-a", "10.0.0.7", "t1")
    assert reports.current(KEY, pods) is None
    # It did not answer: the next pod is asked, then nobody.
    assert reports.pod_to_ask(KEY, pods) == PodToAsk("uid-b", "10.0.0.7", "t1")
    assert reports.pod_to_ask(KEY, pods) is None
    assert reports.record(KEY, "t1", LOADED)
    assert reports.current(KEY, pods) == LOADED
    assert reports.pod_to_ask(KEY, [*pods, pod("c", "t1")]) is None  # answered for t1


def test_a_new_template_is_asked_anew_and_a_rollout_waits() -> None:
    reports = PipelineReports()
    reports.pod_to_ask(KEY, [pod("a", "t1")])
    reports.record(KEY, "t1", LOADED)
    rolling = [pod("a", "t1"), pod("b", "t2")]
    assert serving_template(rolling) is None and reports.pod_to_ask(KEY, rolling) is None
    assert reports.current(KEY, rolling) is None
    rolled = [pod("b", "t2"), pod("c", "t2", ready=False)]
    assert reports.current(KEY, rolled) is None
    assert reports.pod_to_ask(KEY, rolled) == PodToAsk("uid-b", "10.0.0.7", "t2")
    assert not reports.record(KEY, "t1", LOADED)  # a late answer from the old template
    assert serving_template([pod("d", "t3", ready=False)]) is None
    assert reports.pod_to_ask(KEY, [pod("e", "t3", ip=None)]) is None  # no address yet
    reports.forget(KEY)
    assert reports.keys() == set()


def test_a_pods_diagnostics_are_read_and_a_pod_that_does_not_answer_is_none() -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        async def diagnostics(request: web.Request) -> web.Response:
            return web.json_response({"devices": {}, "models": [], "generative": LOADED})

        async def tensor(request: web.Request) -> web.Response:
            return web.json_response({"devices": {}, "models": []})

        app = web.Application()
        app.add_routes([web.get("/kubevino/diagnostics", diagnostics)])
        other = web.Application()
        other.add_routes([web.get("/kubevino/diagnostics", tensor)])
        runners = [web.AppRunner(app), web.AppRunner(other)]
        ports = free_ports(3)
        for runner, port in zip(runners, ports, strict=False):
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            return (
                await read_pipeline_report("127.0.0.1", ports[0]),
                await read_pipeline_report("127.0.0.1", ports[1]),
                await read_pipeline_report("127.0.0.1", ports[2]),  # nothing listens
            )
        finally:
            for runner in runners:
                await runner.cleanup()

    assert asyncio.run(scenario()) == (LOADED, None, None)
