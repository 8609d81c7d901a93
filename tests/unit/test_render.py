"""render(): schema-valid objects, least privilege by default, stable output, clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from kubevino_operator.api import AcceleratorName, AccessMode
from kubevino_operator.podsecurity import restricted_violations
from kubevino_operator.profiles import PROFILES
from kubevino_operator.render import Rendered, render
from kubevino_operator.resolve import Refusal
from kubevino_operator.yamlio import dump_documents
from tests.unit.builders import (
    example_paths,
    example_settings,
    find,
    load_model,
    model,
    model_server_config,
    mounts,
    pod_spec,
    refusal,
    rendered,
    server,
    settings,
)

KUBERNETES_VERSION = "1.34.0"


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", example_paths(), ids=lambda path: path.name)
def test_every_example_renders_schema_valid_objects(path: Path) -> None:
    result = render(load_model(path), example_settings())
    assert isinstance(result, Rendered), result
    for obj in result.objects:
        _validate(obj)


@pytest.mark.parametrize("path", example_paths(), ids=lambda path: path.name)
def test_default_settings_render_an_example_or_ask_the_admin_for_a_decision(path: Path) -> None:
    result = render(load_model(path), settings())
    if isinstance(result, Refusal):
        # Safe by default: host devices need allowPrivileged, GPUs need the node's render GID.
        assert result.reason in {"PrivilegeNotAllowed", "RenderGroupUnknown"}
    else:
        for obj in result.objects:
            _validate(obj)


@pytest.mark.parametrize("path", example_paths(), ids=lambda path: path.name)
def test_rendering_is_byte_for_byte_stable(path: Path) -> None:
    first = render(load_model(path), example_settings())
    second = render(load_model(path), example_settings())
    assert isinstance(first, Rendered) and isinstance(second, Rendered)
    assert dump_documents(first.objects) == dump_documents(second.objects)


def test_a_cpu_model_gets_the_restricted_pod_security_level() -> None:
    result = rendered(model(device={"targetDevice": "CPU"}))
    spec = pod_spec(result)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert server(result)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    assert spec["automountServiceAccountToken"] is False
    assert restricted_violations(spec) == []
    assert result.pod_security_level == "restricted"


def _target_for(profile_name: AcceleratorName) -> dict[str, Any]:
    profile = PROFILES[profile_name]
    device: dict[str, Any] = {"targetDevice": profile.families[0]}
    if profile_name == "intel-gpu-wsl2":
        device["accelerators"] = ["intel-gpu-wsl2"]
    return device


@pytest.mark.parametrize(
    ("profile_name", "mode"),
    [(name, mode) for name, profile in PROFILES.items() for mode in profile.pod_security],
)
def test_each_profile_declares_the_pod_security_level_its_pod_really_needs(
    profile_name: AcceleratorName, mode: AccessMode
) -> None:
    device = {**_target_for(profile_name), "accessMode": mode}
    result = rendered(model(device=device), settings(allowPrivileged=True, renderGroupId=110))
    assert result.pod_security_level == PROFILES[profile_name].pod_security[mode]
    for obj in result.objects:
        _validate(obj)


def test_a_composite_target_gets_the_union_of_its_devices_access() -> None:
    result = rendered(
        model(device={"targetDevice": "MULTI:GPU,NPU,CPU"}),
    )
    assert server(result)["resources"]["limits"] == {
        "gpu.intel.com/i915": 1,
        "npu.intel.com/accel": 1,
    }
    env = {entry["name"]: entry["value"] for entry in server(result)["env"]}
    assert env["KUBEVINO_ACCELERATORS"] == "intel-gpu,intel-npu,cpu"
    assert env["KUBEVINO_DEVICE_PATHS"] == "GPU=/dev/dri,NPU=/dev/accel"


def test_an_instance_index_claims_enough_devices_to_make_it_visible() -> None:
    result = rendered(model(device={"targetDevice": "AUTO:GPU.1,GPU.0,CPU"}))
    assert server(result)["resources"]["limits"] == {"gpu.intel.com/i915": 2}
    two_sticks = rendered(
        model(device={"targetDevice": "MULTI:MYRIAD.1.2-ma2480,MYRIAD.1.4-ma2480"})
    )
    assert server(two_sticks)["resources"]["limits"] == {"squat.ai/ncs2": 2}
    asked = rendered(model(device={"targetDevice": "GPU", "count": 3}))
    assert server(asked)["resources"]["limits"] == {"gpu.intel.com/i915": 3}


def test_device_root_in_the_settings_moves_every_host_device() -> None:
    fake = settings(allowPrivileged=True, renderGroupId=110, deviceRoot="/tmp/fake-dev")
    result = rendered(model(device={"targetDevice": "NPU", "accessMode": "HostDevices"}), fake)
    assert mounts(result)["/dev/accel"]["volume"]["hostPath"]["path"] == "/tmp/fake-dev/accel"


def test_performance_settings_reach_the_model_server_config() -> None:
    result = rendered(
        model(
            device={"targetDevice": "AUTO:GPU,CPU"},
            performance={
                "hint": "CUMULATIVE_THROUGHPUT",
                "numRequests": 8,
                "modelPriority": "HIGH",
                "inferencePrecision": "f16",
                "shape": "(1,3,224,224)",
                "pluginConfig": {"ENABLE_CPU_PINNING": "YES", "AUTO_BATCH_TIMEOUT": 50},
            },
            model={
                "name": "classifier",
                "source": {"pvc": {"claimName": "models"}},
                "versionPolicy": {"specific": {"versions": [1, 3]}},
            },
        )
    )
    assert model_server_config(result) == {
        "name": "classifier",
        "base_path": "/models/model",
        "target_device": "AUTO:GPU,CPU",
        "model_version_policy": {"specific": {"versions": [1, 3]}},
        "plugin_config": {
            "AUTO_BATCH_TIMEOUT": "50",
            "ENABLE_CPU_PINNING": "YES",
            "INFERENCE_PRECISION_HINT": "f16",
            "MODEL_PRIORITY": "HIGH",
            "PERFORMANCE_HINT": "CUMULATIVE_THROUGHPUT",
        },
        "nireq": 8,
        "shape": "(1,3,224,224)",
    }


def test_a_config_change_rolls_the_pods() -> None:
    latency = rendered(model(performance={"hint": "LATENCY"}))
    throughput = rendered(model(performance={"hint": "THROUGHPUT"}))

    def config_hash(result: Rendered) -> str:
        template = find(result, "Deployment")["spec"]["template"]
        value: str = template["metadata"]["annotations"]["kubevino.io/config-hash"]
        return value

    assert config_hash(latency) != config_hash(throughput)


def test_autoscaling_leaves_the_replica_count_to_the_hpa() -> None:
    result = rendered(
        model(
            serving={
                "replicas": 3,
                "autoscaling": {"minReplicas": 2, "maxReplicas": 6},
                "resources": {"requests": {"cpu": "2"}},
            }
        )
    )
    assert "replicas" not in find(result, "Deployment")["spec"]
    hpa = find(result, "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "resnet",
    }
    assert find(result, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    for obj in result.objects:
        _validate(obj)


def test_several_replicas_spread_over_nodes_by_default_and_one_replica_does_not() -> None:
    several = pod_spec(rendered(model(serving={"replicas": 3})))
    assert several["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",  # a one-node cluster still runs them all
            "labelSelector": {"matchLabels": {"kubevino.io/inference-model": "resnet"}},
            "matchLabelKeys": ["pod-template-hash"],  # a rollout's old pods do not count
        }
    ]
    autoscaled = model(
        serving={
            "autoscaling": {"minReplicas": 2, "maxReplicas": 4},
            "resources": {"requests": {"cpu": "1"}},
        }
    )
    assert "topologySpreadConstraints" in pod_spec(rendered(autoscaled))
    assert "topologySpreadConstraints" not in pod_spec(rendered(model()))


def test_the_users_spread_replaces_the_default_and_an_empty_list_turns_it_off() -> None:
    zones = model(
        serving={
            "replicas": 4,
            "topologySpreadConstraints": [
                {
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "minDomains": 2,
                }
            ],
        }
    )
    (constraint,) = pod_spec(rendered(zones))["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    assert constraint["whenUnsatisfiable"] == "DoNotSchedule"
    assert constraint["minDomains"] == 2
    assert constraint["labelSelector"] == {"matchLabels": {"kubevino.io/inference-model": "resnet"}}
    for obj in rendered(zones).objects:
        _validate(obj)
    off = model(serving={"replicas": 4, "topologySpreadConstraints": []})
    assert "topologySpreadConstraints" not in pod_spec(rendered(off))


def test_accelerator_pods_roll_without_surge_so_a_device_is_never_waited_for() -> None:
    gpu = find(rendered(model(device={"targetDevice": "GPU"})), "Deployment")
    cpu = find(rendered(model()), "Deployment")
    assert gpu["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert cpu["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_http_source_is_fetched_by_an_init_container_with_checksums() -> None:
    result = rendered(
        model(
            model={
                "source": {
                    "http": {
                        "url": "https://models.example/resnet/",
                        "sha256": {"1/model.xml": "ab" * 32},
                    }
                }
            }
        )
    )
    fetch = pod_spec(result)["initContainers"][0]
    assert fetch["command"] == ["kubevino-fetch"]
    assert fetch["args"][:4] == [
        "--url",
        "https://models.example/resnet/",
        "--dest",
        "/models/model",
    ]
    assert "sha256.json" in find(result, "ConfigMap")["data"]
    assert fetch["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert mounts(result)["/models/model"]["mount"]["readOnly"] is True


def test_s3_credentials_come_from_the_referenced_secret_only() -> None:
    result = rendered(
        model(
            model={
                "source": {
                    "s3": {
                        "uri": "s3://models/resnet",
                        "endpoint": "http://minio:9000",
                        "secretRef": {"name": "store"},
                        "verifyTls": False,
                    }
                }
            }
        )
    )
    fetch = pod_spec(result)["initContainers"][0]
    assert "--no-verify-tls" in fetch["args"]
    secret_keys = {
        entry["name"]: entry["valueFrom"]["secretKeyRef"]["name"] for entry in fetch["env"]
    }
    assert secret_keys == {
        "AWS_ACCESS_KEY_ID": "store",
        "AWS_SECRET_ACCESS_KEY": "store",
        "AWS_SESSION_TOKEN": "store",
    }


def test_model_cache_on_a_claim_is_passed_to_the_server() -> None:
    result = rendered(model(performance={"modelCache": {"claimName": "ov-cache"}}))
    assert mounts(result)["/cache"]["volume"]["persistentVolumeClaim"] == {"claimName": "ov-cache"}
    args = server(result)["args"]
    assert args[args.index("--cache_dir") + 1] == "/cache"


def test_endpoints_and_selector_for_status() -> None:
    result = rendered(model(serving={"service": {"restPort": 8080, "grpcPort": 8081}}))
    assert result.endpoints == {
        "rest": "http://resnet.ml.svc.cluster.local:8080",
        "grpc": "resnet.ml.svc.cluster.local:8081",
    }
    assert result.selector == {"kubevino.io/inference-model": "resnet"}


REFUSALS = [
    (
        {"targetDevice": "FPGA"},
        "UnknownDevice",
        "no accelerator profile serves OpenVINO device FPGA",
    ),
    ({"targetDevice": "AUTO:-CPU"}, "NoAccelerator", "leaves no accelerator"),
    (
        {"targetDevice": "CPU", "accelerators": ["intel-gpu"]},
        "UnusedAccelerator",
        "does not use",
    ),
    (
        {"targetDevice": "GPU", "accelerators": ["intel-gpu", "intel-gpu-wsl2"]},
        "AmbiguousAccelerator",
        "keep one",
    ),
    (
        {"targetDevice": "GPU", "accessMode": "HostDevices"},
        "PrivilegeNotAllowed",
        "gpu.intel.com/i915",
    ),
]


@pytest.mark.parametrize(("device", "reason", "fragment"), REFUSALS)
def test_specs_the_settings_cannot_serve_are_refused_with_a_reason(
    device: dict[str, Any], reason: str, fragment: str
) -> None:
    refused = refusal(model(device=device))
    assert refused.reason == reason
    assert fragment in refused.message


def test_the_kubevino_runtime_gives_up_on_a_missing_model_and_model_server_is_not_told_to() -> None:
    """The runtime's termination message is how the operator learns the model is missing;
    the stock Model Server does not know the flag."""
    args = server(rendered(model()))["args"]
    assert args[args.index("--model_wait_seconds") + 1] == "30"
    stock = rendered(model(device={"targetDevice": "MYRIAD"}, serving={"runtime": "ModelServer"}))
    assert "--model_wait_seconds" not in server(stock)["args"]


def test_every_model_pod_serves_metrics_whichever_runtime() -> None:
    """Both leave /metrics off by default (Model Server has the flag since 2022.3, its oldest
    image the operator picks)."""
    assert "--metrics_enable" in server(rendered(model()))["args"]
    stock = rendered(model(device={"targetDevice": "MYRIAD"}, serving={"runtime": "ModelServer"}))
    assert "--metrics_enable" in server(stock)["args"]


def test_dynamic_batching_gives_the_model_a_bounded_batch_and_the_runtime_its_flags() -> None:
    batching = {"dynamicBatching": {"maxBatchSize": 8, "maxDelayMicroseconds": 500}}
    found = rendered(model(performance=batching))
    args = server(found)["args"]
    assert args[args.index("--max_dynamic_batch") + 1] == "8"
    assert args[args.index("--dynamic_batch_delay_us") + 1] == "500"
    assert model_server_config(found)["batch_size"] == "1:8"
    # Without a delay, only the maximum is passed (the runtime's default delay is 0).
    args = server(rendered(model(performance={"dynamicBatching": {"maxBatchSize": 4}})))["args"]
    assert "--dynamic_batch_delay_us" not in args
    # A shape the user gives is theirs: the batch dimension is not changed.
    shaped = {"shape": "(-1,3,224,224)", "dynamicBatching": {"maxBatchSize": 4}}
    assert "batch_size" not in model_server_config(rendered(model(performance=shaped)))
    assert "--max_dynamic_batch" not in server(rendered(model()))["args"]
    refused = refusal(
        model(
            device={"targetDevice": "MYRIAD"},
            performance={"dynamicBatching": {"maxBatchSize": 4}},
        )
    )
    assert refused.reason == "RuntimeUnsupported"
    assert refused.message == (
        "performance.dynamicBatching is a kubevino runtime setting, but this model runs on the "
        "ModelServer runtime: remove performance.dynamicBatching"
    )


def test_server_workers_reach_the_kubevino_runtime_and_are_refused_for_model_server() -> None:
    args = server(rendered(model(serving={"workers": 3})))["args"]
    assert args[args.index("--workers") + 1] == "3"
    assert "--workers" not in server(rendered(model()))["args"]
    refused = refusal(
        model(device={"targetDevice": "MYRIAD"}, serving={"runtime": "Auto", "workers": 2})
    )
    assert refused.reason == "RuntimeUnsupported"
    assert "serving.workers" in refused.message
