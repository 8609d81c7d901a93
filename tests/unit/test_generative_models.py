"""Generative InferenceModels (spec.model.task): what admission refuses and why, the command
line each runtime gets, and that kubevino-serve's own parser accepts what the operator renders."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kubevino_operator.render import Rendered, render
from kubevino_operator.status import build_status
from kubevino_runtime import startup
from kubevino_runtime.generative.settings import check_for_device, settings_from_args
from kubevino_runtime.parity import UsageError
from tests.unit.builders import (
    EXAMPLES,
    example_settings,
    find,
    load_model,
    model,
    refusal,
    rendered,
    server,
)

PVC = {"pvc": {"claimName": "models", "subPath": "llm"}}


def generative(task: str, source: dict[str, Any] | None = None, **spec: Any) -> Any:
    return model("llm", model={"name": "chat", "task": task, "source": source or PVC}, **spec)


def flag(args: list[str], name: str) -> str:
    assert name in args, f"{name} not in {args}"
    return args[args.index(name) + 1]


def kubevino_serve_accepts(args: list[str], target: str) -> None:
    """The checks kubevino-serve makes before loading anything (exit 64 otherwise)."""
    parsed = startup.parse_arguments(args)
    check_for_device(settings_from_args(parsed, None), target)


# --- render -----------------------------------------------------------------------------------


def test_text_generation_gets_one_command_line_with_model_servers_task_flags() -> None:
    result = rendered(
        generative(
            "TextGeneration",
            device={"targetDevice": "GPU"},
            generation={
                "textGeneration": {
                    "kvCacheSizeGB": 4,
                    "maxConcurrentSequences": 32,
                    "maxBatchedTokens": 4096,
                    "prefixCaching": False,
                    "dynamicSplitFuse": True,
                    "kvCachePrecision": "u8",
                }
            },
            performance={"hint": "LATENCY", "modelCache": {}},
        )
    )
    assert server(result)["args"] == [
        "--task",
        "text_generation",
        "--model_path",
        "/models/model",
        "--model_name",
        "chat",
        "--target_device",
        "GPU",
        "--port",
        "9000",
        "--rest_port",
        "8000",
        "--metrics_enable",
        "--cache_dir",
        "/cache",
        "--cache_size",
        "4",
        "--max_num_seqs",
        "32",
        "--max_num_batched_tokens",
        "4096",
        "--enable_prefix_caching",
        "false",
        "--dynamic_split_fuse",
        "true",
        "--kv_cache_precision",
        "u8",
        "--plugin_config",
        '{"PERFORMANCE_HINT":"LATENCY"}',
    ]
    kubevino_serve_accepts(server(result)["args"], "GPU")


def test_a_generative_model_has_no_config_json_since_both_runtimes_refuse_task_with_it() -> None:
    result = rendered(generative("Rerank"))
    assert "data" not in find(result, "ConfigMap")
    assert "--config_path" not in server(result)["args"]
    fetched = rendered(
        generative("Embeddings", {"http": {"url": "https://m/e.tgz", "sha256": {"1/a": "0" * 64}}})
    )
    assert list(find(fetched, "ConfigMap")["data"]) == ["sha256.json"]


def test_a_downloaded_generative_model_is_read_from_version_1_where_the_fetch_puts_it() -> None:
    result = rendered(generative("Embeddings", {"s3": {"uri": "s3://models/bge"}}))
    assert flag(server(result)["args"], "--model_path") == "/models/model/1"
    assert flag(server(rendered(generative("Embeddings")))["args"], "--model_path") == (
        "/models/model"
    )


def test_embeddings_settings_become_normalize_and_pooling() -> None:
    args = server(
        rendered(generative("Embeddings", generation={"embeddings": {"normalize": False}}))
    )["args"]
    assert flag(args, "--task") == "embeddings"
    assert flag(args, "--normalize") == "false"
    assert "--pooling" not in args
    kubevino_serve_accepts(args, "CPU")


def test_npu_text_generation_passes_its_static_pipeline_lengths() -> None:
    args = server(
        rendered(
            generative(
                "TextGeneration",
                device={"targetDevice": "NPU"},
                generation={"textGeneration": {"maxPromptLength": 2048, "minResponseLength": 256}},
            )
        )
    )["args"]
    assert flag(args, "--max_prompt_len") == "2048"
    # Neither runtime has a flag for the response length: it is GenAI's NPU property.
    assert json.loads(flag(args, "--plugin_config")) == {"MIN_RESPONSE_LEN": 256}
    kubevino_serve_accepts(args, "NPU")


def test_the_kubevino_runtime_gets_its_workers_and_no_model_wait_for_a_pipeline() -> None:
    args = server(rendered(generative("TextGeneration", serving={"workers": 2})))["args"]
    assert flag(args, "--workers") == "2"
    # --model_wait_seconds watches the KServe models, which a generative server has none of.
    assert "--model_wait_seconds" not in args


def test_the_model_server_runtime_gets_the_generative_image_and_the_draft_model() -> None:
    result = rendered(
        generative(
            "TextGeneration",
            generation={"textGeneration": {"draftModel": {"directory": "draft"}}},
            serving={"runtime": "ModelServer"},
        )
    )
    assert server(result)["image"] == "openvino/model_server:2026.2.1"
    assert flag(server(result)["args"], "--draft_source_model") == "draft"
    assert result.resolution.runtime == "ModelServer"
    gpu = rendered(
        generative("Embeddings", device={"targetDevice": "GPU"}, serving={"runtime": "ModelServer"})
    )
    assert server(gpu)["image"] == "openvino/model_server:2026.2.1-gpu"


def test_kubevino_serve_would_refuse_the_draft_model_admission_keeps_from_it() -> None:
    with pytest.raises(UsageError, match="speculative decoding"):
        startup.parse_arguments(
            [
                *("--task", "text_generation", "--model_path", "/m", "--model_name", "m"),
                *("--draft_source_model", "draft"),
            ]
        )


def test_a_chat_template_goes_to_the_config_map_and_kubevino_serve_reads_it_there() -> None:
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    result = rendered(
        generative("TextGeneration", generation={"textGeneration": {"chatTemplate": template}})
    )
    config = find(result, "ConfigMap")["data"]
    assert config == {"chat_template.jinja": template}
    args = server(result)["args"]
    assert flag(args, "--chat_template_file") == "/config/chat_template.jinja"
    kubevino_serve_accepts(args, "CPU")


def test_probes_and_service_are_the_same_for_every_task() -> None:
    """/v2/health/ready turns true once the pipeline has loaded, in both runtimes; the OpenAI
    API is plain HTTP on the REST port, so the port keeps its name."""
    result = rendered(generative("TextGeneration"))
    assert server(result)["readinessProbe"]["httpGet"] == {
        "path": "/v2/health/ready",
        "port": "http",
    }
    ports = {port["name"]: port for port in find(result, "Service")["spec"]["ports"]}
    assert ports["http"]["port"] == 8000
    assert ports["http"]["appProtocol"] == "http"


def test_endpoints_and_status_name_the_openai_api_and_the_task() -> None:
    result = rendered(generative("TextGeneration"))
    assert result.endpoints["openai"] == "http://llm.ml.svc.cluster.local:8000/v3"
    status = build_status(
        generation=1, previous=None, now="2026-01-01T00:00:00Z", rendered=result, deployment=None
    )
    assert status["task"] == "TextGeneration"
    assert status["endpoints"]["openai"] == result.endpoints["openai"]
    tensor = rendered(model())
    assert "openai" not in tensor.endpoints


def test_a_bare_auto_that_reaches_a_device_without_genai_is_refused_at_render() -> None:
    refused = refusal(
        generative("Embeddings", device={"targetDevice": "AUTO", "accelerators": ["ncs2", "cpu"]})
    )
    assert refused.reason == "GenerativeDeviceUnsupported"
    assert "ncs2" in refused.message


@pytest.mark.parametrize(
    "name",
    [
        "text-generation.yaml",
        "text-generation-npu.yaml",
        "text-generation-gguf.yaml",
        "embeddings.yaml",
        "rerank.yaml",
    ],
)
def test_kubevino_serve_accepts_what_every_generative_example_renders(name: str) -> None:
    subject = load_model(EXAMPLES / name)
    result = render(subject, example_settings())
    assert isinstance(result, Rendered), result
    kubevino_serve_accepts(server(result)["args"], subject.spec.device.target_device)


def test_the_standalone_autoscaler_example_targets_the_text_generation_example() -> None:
    hpa = yaml.safe_load((EXAMPLES / "autoscaling" / "text-generation-hpa.yaml").read_text())
    llm = load_model(EXAMPLES / "text-generation.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] == llm.metadata.name
    assert llm.spec.serving.autoscaling is None
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert metric == "kubevino_generation_requests_waiting"


# --- admission --------------------------------------------------------------------------------

NPU_LENGTHS = {"maxPromptLength": 1024, "minResponseLength": 128}
REFUSED = [
    ({"generation": {"embeddings": {}}}, "Tensor", "set spec.model.task"),
    ({"generation": {"textGeneration": {}}}, "Embeddings", "TextGeneration only"),
    ({"generation": {"embeddings": {"normalize": True}}}, "Rerank", "Embeddings only"),
    ({"performance": {"batchSize": 4}}, "TextGeneration", "pipeline sizes and batches itself"),
    ({"performance": {"numRequests": 4}}, "Embeddings", "pipeline sizes and batches itself"),
    ({"device": {"targetDevice": "MULTI:GPU,CPU"}}, "TextGeneration", "MULTI and BATCH"),
    ({"device": {"targetDevice": "BATCH:GPU(4)"}}, "Embeddings", "MULTI and BATCH"),
    ({"device": {"targetDevice": "MYRIAD"}}, "Rerank", "no GenAI plugin"),
    ({"device": {"targetDevice": "AUTO:MYRIAD,CPU"}}, "Rerank", "no GenAI plugin"),
    ({"device": {"targetDevice": "NPU"}}, "TextGeneration", "compiled for fixed lengths"),
    (
        {
            "device": {"targetDevice": "NPU"},
            "generation": {"textGeneration": {"maxPromptLength": 1024}},
        },
        "TextGeneration",
        "compiled for fixed lengths",
    ),
    (
        {"generation": {"textGeneration": {"maxPromptLength": 1024}}},
        "TextGeneration",
        "size NPU's static pipeline",
    ),
    (
        {
            "device": {"targetDevice": "NPU"},
            "generation": {"textGeneration": {**NPU_LENGTHS, "kvCacheSizeGB": 2}},
        },
        "TextGeneration",
        "which NPU's static pipeline does not run",
    ),
    (
        {"generation": {"textGeneration": {"draftModel": {"directory": "draft"}}}},
        "TextGeneration",
        "set serving.runtime to ModelServer",
    ),
    (
        {"performance": {"pluginConfig": {"MAX_PROMPT_LEN": 512}}},
        "TextGeneration",
        "use generation.textGeneration's maxPromptLength",
    ),
    (
        {"generation": {"textGeneration": {"draftModel": {"directory": "a/b"}}}},
        "TextGeneration",
        "should match pattern",
    ),
    (
        {"generation": {"textGeneration": {"kvCachePrecision": "f16"}}},
        "TextGeneration",
        "Input should be 'u8'",
    ),
    (
        {
            "generation": {"textGeneration": {"chatTemplate": "{{ messages }}"}},
            "serving": {"runtime": "ModelServer"},
        },
        "TextGeneration",
        "put the file there and remove chatTemplate",
    ),
]


@pytest.mark.parametrize(("spec", "task", "fragment"), REFUSED)
def test_generative_specs_admission_refuses_say_what_to_change(
    spec: dict[str, Any], task: str, fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        generative(task, **spec)
    assert fragment in str(caught.value)


def test_a_generative_model_has_no_version_policy() -> None:
    with pytest.raises(ValidationError, match="one directory without versions"):
        model(model={"task": "Rerank", "source": PVC, "versionPolicy": {"all": {}}})


def test_tensor_is_the_default_task_and_renders_as_before() -> None:
    subject = model()
    assert subject.spec.model.task == "Tensor"
    assert flag(server(rendered(subject))["args"], "--config_path") == "/config/config.json"
