"""Pure: (InferenceModel, Settings) → the Kubernetes objects that serve it, or a refusal.

Same input, same output, byte for byte once dumped: GitOps diffs show real changes only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kubevino_operator.api import SERVER_TASK, InferenceModel, PodSecurityLevel, TopologySpread
from kubevino_operator.discovery import DISCOVERABLE, Inventory, accelerator_label
from kubevino_operator.inferrequests import plan_infer_requests
from kubevino_operator.modelsource import (
    CACHE_DIR,
    CONFIG_DIR,
    MODEL_DIR,
    ModelDelivery,
    checksums,
    generative_model_dir,
    gguf_filename,
    model_delivery,
)
from kubevino_operator.podsecurity import pod_security_level
from kubevino_operator.profiles import AcceleratorProfile, HostVolume
from kubevino_operator.resolve import (
    Refusal,
    RefusedError,
    Resolution,
    device_plugin_resource,
    dra_device_class,
    resolve,
)
from kubevino_operator.settings import Settings

FIELD_MANAGER = "kubevino"
INSTANCE_LABEL = "kubevino.io/inference-model"
CONFIG_HASH_ANNOTATION = "kubevino.io/config-hash"
HOSTNAME_LABEL = "kubernetes.io/hostname"
DEVICE_PATHS_ENV = "KUBEVINO_DEVICE_PATHS"
ACCELERATORS_ENV = "KUBEVINO_ACCELERATORS"
# Both runtimes answer these for generative models too: ready once the pipeline has loaded.
PROBE_PATHS = {"ready": "/v2/health/ready", "live": "/v2/health/live"}
OPENAI_API_PATH = "/v3"


@dataclass(frozen=True)
class Rendered:
    objects: tuple[dict[str, Any], ...]
    resolution: Resolution
    pod_security_level: PodSecurityLevel
    endpoints: dict[str, str]
    selector: dict[str, str]
    model: InferenceModel

    @property
    def label_selector(self) -> str:
        """The pods' selector as the API's labelSelector parameter and status.selector."""
        return ",".join(f"{key}={value}" for key, value in self.selector.items())


def labels(model: InferenceModel) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kubevino-model-server",
        "app.kubernetes.io/instance": model.metadata.name,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "kubevino",
        "app.kubernetes.io/managed-by": "kubevino",
        INSTANCE_LABEL: model.metadata.name,
    }


def selector(model: InferenceModel) -> dict[str, str]:
    return {INSTANCE_LABEL: model.metadata.name}


def _meta(model: InferenceModel, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": model.metadata.namespace, "labels": labels(model)}


def config_name(model: InferenceModel) -> str:
    return f"{model.metadata.name}-config"


# --- runtime configuration --------------------------------------------------------------------


def model_server_config(model: InferenceModel) -> dict[str, Any]:
    """Model Server's config.json for this model: read by both runtimes alike."""
    spec = model.spec
    performance = spec.performance
    entry: dict[str, Any] = {
        "name": model.served_name,
        "base_path": MODEL_DIR,
        "target_device": spec.device.target_device,
    }
    nireq = plan_infer_requests(model).count
    if nireq is not None:
        entry["nireq"] = nireq
    version_policy = spec.model.version_policy
    entry["model_version_policy"] = (
        version_policy.to_model_server() if version_policy else {"latest": {"num_versions": 1}}
    )
    if performance is not None:
        plugin_config = performance.effective_plugin_config()
        if plugin_config:
            # Model Server 2022.3 reads plugin_config values as strings.
            entry["plugin_config"] = {key: str(value) for key, value in plugin_config.items()}
        if performance.batch_size is not None:
            entry["batch_size"] = str(performance.batch_size)
        if performance.shape is not None:
            entry["shape"] = performance.shape
        if performance.shapes is not None:
            entry["shape"] = dict(sorted(performance.shapes.items()))
        batching = performance.dynamic_batching
        if (
            batching is not None
            and batching.max_batch_size > 1
            and performance.shape is None
            and performance.shapes is None
        ):
            # Requests join along a dynamic batch dimension; bounded, so OpenVINO can size
            # its buffers, and a client's batch within the same bound.
            entry["batch_size"] = f"1:{batching.max_batch_size}"
    return {"model_config_list": [{"config": entry}]}


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


# The name Model Server gives a chat template beside the model; the pod reads it from /config.
CHAT_TEMPLATE_FILE = "chat_template.jinja"


def _chat_template(model: InferenceModel) -> str | None:
    generation = model.spec.generation
    text = generation.text_generation if generation else None
    return text.chat_template if text is not None else None


def _config_map(model: InferenceModel) -> dict[str, Any]:
    data: dict[str, str] = {}
    # A generative model is described on the command line alone: both runtimes refuse
    # --task with --config_path.
    if model.spec.model.task == "Tensor":
        data["config.json"] = _json(model_server_config(model))
    template = _chat_template(model)
    if template is not None:
        data[CHAT_TEMPLATE_FILE] = template
    expected = checksums(model)
    if expected:
        data["sha256.json"] = _json(expected)
    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(model, config_name(model)),
    }
    if data:  # the API server drops an empty map; leaving it out keeps drift honest
        config_map["data"] = data
    return config_map


# --- volumes ----------------------------------------------------------------------------------


def _device_volumes(
    profile: AcceleratorProfile, resolution: Resolution, settings: Settings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    host_volumes: tuple[HostVolume, ...] = ()
    if resolution.access_mode == "HostDevices" and profile.host_devices is not None:
        for device in profile.host_devices.devices:
            name = f"{profile.name}-dev-{device.relative_path.replace('/', '-')}"
            host_path = f"{settings.device_root.rstrip('/')}/{device.relative_path}"
            volumes.append(
                {"name": name, "hostPath": {"path": host_path, "type": device.host_path_type}}
            )
            mounts.append({"name": name, "mountPath": device.container_path()})
        host_volumes = profile.host_devices.host_volumes
    elif resolution.access_mode == "DevicePlugin" and profile.device_plugin is not None:
        host_volumes = profile.device_plugin.host_volumes
    for host_volume in host_volumes:
        path = getattr(settings, host_volume.setting)
        volumes.append({"name": host_volume.name, "hostPath": {"path": path, "type": "Directory"}})
        mounts.append(
            {"name": host_volume.name, "mountPath": path, "readOnly": host_volume.read_only}
        )
    return volumes, mounts


# --- pod --------------------------------------------------------------------------------------


def _ports(model: InferenceModel) -> tuple[int, int]:
    """(REST port, gRPC port)."""
    service = model.spec.serving.service
    return (service.rest_port, service.grpc_port) if service else (8000, 9000)


def rest_port(model: InferenceModel) -> int:
    """The REST port of the pods (and the Service)."""
    return _ports(model)[0]


def _container_security(privileged: bool) -> dict[str, Any]:
    if privileged:
        # The device cgroup only opens for privileged containers; the process itself stays
        # unprivileged (non-root, no capabilities) unless the profile needs root.
        return {"privileged": True, "readOnlyRootFilesystem": True}
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }


def _pod_security(resolution: Resolution, settings: Settings) -> dict[str, Any]:
    as_root = any(claim.profile.run_as_root for claim in resolution.claims)
    context: dict[str, Any] = (
        {"runAsUser": 0, "runAsGroup": 0}
        if as_root
        else {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_group,
            "fsGroup": settings.run_as_group,
            "fsGroupChangePolicy": "OnRootMismatch",
        }
    )
    if resolution.groups:
        context["supplementalGroups"] = list(resolution.groups)
    context["seccompProfile"] = {"type": "RuntimeDefault"}
    return context


def _resources(model: InferenceModel, resolution: Resolution, settings: Settings) -> dict[str, Any]:
    given = model.spec.serving.resources
    limits: dict[str, Any] = dict(given.limits or {}) if given else {}
    requests: dict[str, Any] = dict(given.requests or {}) if given else {}
    if resolution.access_mode == "DevicePlugin":
        for claim in resolution.device_claims:
            resource = device_plugin_resource(claim.profile, settings)
            # Extended resources: requests must equal limits.
            limits[resource] = claim.count
            requests[resource] = claim.count
    result: dict[str, Any] = {}
    if _claims_devices(resolution):
        result["claims"] = [{"name": DEVICE_CLAIM}]
    if limits:
        result["limits"] = dict(sorted(limits.items()))
    if requests:
        result["requests"] = dict(sorted(requests.items()))
    return result


# --- Dynamic Resource Allocation ---------------------------------------------------------------

# The pod's name for its device claim (container resources.claims refer to it).
DEVICE_CLAIM = "devices"


def _claims_devices(resolution: Resolution) -> bool:
    return resolution.access_mode == "ResourceClaim" and bool(resolution.device_claims)


def claim_template_name(model: InferenceModel) -> str:
    return f"{model.metadata.name}-devices"


def _pod_resource_claim(model: InferenceModel) -> dict[str, str]:
    asked = model.spec.device.resource_claim
    if asked is not None and asked.claim_name is not None:
        return {"name": DEVICE_CLAIM, "resourceClaimName": asked.claim_name}
    if asked is not None and asked.claim_template_name is not None:
        return {"name": DEVICE_CLAIM, "resourceClaimTemplateName": asked.claim_template_name}
    return {"name": DEVICE_CLAIM, "resourceClaimTemplateName": claim_template_name(model)}


def _device_request(
    model: InferenceModel, profile: AcceleratorProfile, count: int, settings: Settings
) -> dict[str, Any]:
    """One request per accelerator, named after it: "exactly" count devices of its class."""
    assert profile.dra is not None
    asked = model.spec.device.resource_claim
    expressions = list(asked.selectors or []) if asked else []
    if asked is not None and asked.min_memory is not None:
        # The device's own driver is the domain of its unqualified capacities: a class that
        # is renamed, or served by another driver, still finds them (a literal domain that
        # is not the device's errors in the scheduler: "no such key").
        capacity = "device.capacity[device.driver].memory"
        expressions.append(f'{capacity}.compareTo(quantity("{asked.min_memory}")) >= 0')
    exactly: dict[str, Any] = {
        "deviceClassName": (asked.device_class_name if asked else None)
        or dra_device_class(profile, settings),
        "allocationMode": "ExactCount",
        "count": count,
    }
    if expressions:
        exactly["selectors"] = [{"cel": {"expression": text}} for text in expressions]
    return {"name": profile.name, "exactly": exactly}


def _claim_template(
    model: InferenceModel, resolution: Resolution, settings: Settings
) -> dict[str, Any] | None:
    asked = model.spec.device.resource_claim
    if not _claims_devices(resolution) or (asked is not None and asked.user_managed):
        return None
    requests = [
        _device_request(model, claim.profile, claim.count, settings)
        for claim in resolution.device_claims
    ]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": _meta(model, claim_template_name(model)),
        "spec": {"spec": {"devices": {"requests": requests}}},
    }


def _node_selector(
    model: InferenceModel, resolution: Resolution, settings: Settings
) -> dict[str, str]:
    chosen: dict[str, str] = {}
    if resolution.access_mode == "HostDevices":
        # Device plugins already steer pods to nodes that have the resource.
        for claim in resolution.device_claims:
            profile = claim.profile
            if profile.name in settings.node_selectors:
                chosen.update(settings.node_selectors[profile.name])
            elif settings.node_discovery and profile.name in DISCOVERABLE:
                chosen[accelerator_label(profile.name)] = "true"
            else:
                chosen.update(profile.node_selector)
    chosen.update(model.spec.serving.node_selector or {})
    return dict(sorted(chosen.items()))


def _device_paths(resolution: Resolution) -> str:
    """``GPU=/dev/dri,NPU=/dev/accel``: where each family's nodes appear in the container (the
    same in both modes: device plugins hand nodes over at their host paths). The runtime opens
    them before compiling and says why one does not open."""
    paths = [
        f"{family}={device.container_path()}"
        for claim in resolution.device_claims
        if claim.profile.host_devices is not None
        for family in claim.profile.families
        for device in claim.profile.host_devices.devices
    ]
    return ",".join(paths)


# How long the kubevino runtime waits for a missing or failing model before it exits with the
# reason as its termination message (Model Server itself would wait silently forever).
MODEL_WAIT_SECONDS = 30


def _flag_value(value: bool | int | str) -> str:
    """Model Server's boolean flags take the words true and false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def generation_flags(model: InferenceModel) -> list[str]:
    """spec.generation as the task options Model Server and kubevino-serve share."""
    generation = model.spec.generation
    text = generation.text_generation if generation else None
    embeddings = generation.embeddings if generation else None
    chosen: list[tuple[str, bool | int | str | None]] = []
    if text is not None:
        chosen += [
            ("--cache_size", text.kv_cache_size_gb),
            ("--max_num_seqs", text.max_concurrent_sequences),
            ("--max_num_batched_tokens", text.max_batched_tokens),
            ("--enable_prefix_caching", text.prefix_caching),
            ("--dynamic_split_fuse", text.dynamic_split_fuse),
            ("--kv_cache_precision", text.kv_cache_precision),
            ("--max_prompt_len", text.max_prompt_length),
            # Model Server reads it as a directory inside the model's (admission allows it
            # only on the ModelServer runtime: kubevino-serve refuses the flag).
            ("--draft_source_model", text.draft_model.directory if text.draft_model else None),
        ]
    if embeddings is not None:
        chosen += [("--normalize", embeddings.normalize), ("--pooling", embeddings.pooling)]
    args: list[str] = []
    for flag, value in chosen:
        if value is not None:
            args += [flag, _flag_value(value)]
    return args


def generative_plugin_config(model: InferenceModel) -> dict[str, int | str]:
    """OpenVINO properties of a generative pipeline: performance's, plus the NPU response
    length, which has no flag in either runtime."""
    performance = model.spec.performance
    properties = performance.effective_plugin_config() if performance else {}
    generation = model.spec.generation
    text = generation.text_generation if generation else None
    if text is not None and text.min_response_length is not None:
        properties["MIN_RESPONSE_LEN"] = text.min_response_length
    return dict(sorted(properties.items()))


def _generative_server_args(
    model: InferenceModel, resolution: Resolution, delivery: ModelDelivery
) -> list[str]:
    """Model Server 2026.2+ builds the pipeline's graph in memory from these flags alone, and
    kubevino-serve takes the same ones: one command line for both runtimes."""
    rest_port, grpc_port = _ports(model)
    args = [
        "--task",
        SERVER_TASK[model.spec.model.task],
        "--model_path",
        generative_model_dir(model),
        "--model_name",
        model.served_name,
        "--target_device",
        model.spec.device.target_device,
        "--port",
        str(grpc_port),
        "--rest_port",
        str(rest_port),
        "--metrics_enable",
    ]
    gguf = gguf_filename(model)
    if gguf is not None:
        # Model Server reads --model_path as a GenAI directory unless this names the GGUF file
        # in it; kubevino-serve takes the flag too (and finds a directory's one .gguf itself).
        args += ["--gguf_filename", gguf]
    if delivery.cache_dir:
        args += ["--cache_dir", CACHE_DIR]
    args += generation_flags(model)
    if _chat_template(model) is not None:
        # kubevino-serve's own flag (admission keeps chatTemplate off the ModelServer runtime).
        args += ["--chat_template_file", f"{CONFIG_DIR}/{CHAT_TEMPLATE_FILE}"]
    properties = generative_plugin_config(model)
    if properties:
        args += ["--plugin_config", json.dumps(properties, separators=(",", ":"))]
    # No --model_wait_seconds: it watches the KServe models, and a generative server has none;
    # a pipeline that fails to load leaves the server not ready with the reason.
    if resolution.runtime == "Kubevino" and model.spec.serving.workers is not None:
        args += ["--workers", str(model.spec.serving.workers)]
    return args


def _server_args(
    model: InferenceModel, resolution: Resolution, delivery: ModelDelivery
) -> list[str]:
    if model.spec.model.task != "Tensor":
        return _generative_server_args(model, resolution, delivery)
    rest_port, grpc_port = _ports(model)
    args = [
        "--config_path",
        f"{CONFIG_DIR}/config.json",
        "--port",
        str(grpc_port),
        "--rest_port",
        str(rest_port),
    ]
    # Metrics are off unless enabled, in Model Server (the flag exists since 2022.3, the oldest
    # image the operator picks) and in kubevino-serve alike; every model pod serves them.
    args.append("--metrics_enable")
    if delivery.cache_dir:
        args += ["--cache_dir", CACHE_DIR]
    if resolution.runtime == "Kubevino":
        args += ["--model_wait_seconds", str(MODEL_WAIT_SECONDS)]
        if model.spec.serving.workers is not None:
            args += ["--workers", str(model.spec.serving.workers)]
        args += _batching_flags(model)
    return args


def _batching_flags(model: InferenceModel) -> list[str]:
    performance = model.spec.performance
    batching = performance.dynamic_batching if performance is not None else None
    if batching is None:
        return []
    flags = ["--max_dynamic_batch", str(batching.max_batch_size)]
    if batching.max_delay_microseconds:
        flags += ["--dynamic_batch_delay_us", str(batching.max_delay_microseconds)]
    return flags


def _probe(path: str, port: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _pod_template(
    model: InferenceModel, resolution: Resolution, settings: Settings, config_hash: str
) -> dict[str, Any]:
    rest_port, grpc_port = _ports(model)
    delivery = model_delivery(
        model,
        settings,
        _container_security(privileged=False),
        model_server=resolution.runtime == "ModelServer",
    )
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_name(model)}},
        *delivery.volumes[:1],
        {"name": "tmp", "emptyDir": {}},
        *delivery.volumes[1:],
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        *delivery.server_mounts[:1],
        {"name": "tmp", "mountPath": "/tmp"},
        *delivery.server_mounts[1:],
    ]
    for claim in resolution.device_claims:
        device_volumes, device_mounts = _device_volumes(claim.profile, resolution, settings)
        volumes += device_volumes
        mounts += device_mounts
    env: list[dict[str, str]] = [
        {"name": ACCELERATORS_ENV, "value": ",".join(resolution.accelerators)},
    ]
    device_paths = _device_paths(resolution)
    if device_paths:  # the API server drops empty values; leaving them out keeps drift honest
        env.append({"name": DEVICE_PATHS_ENV, "value": device_paths})
    seen_env = {entry["name"] for entry in env}
    for claim in resolution.claims:
        for name, value in claim.profile.env:
            if name not in seen_env:
                env.append({"name": name, "value": value})
                seen_env.add(name)
    container_security = _container_security(resolution.privileged)
    server: dict[str, Any] = {
        "name": "server",
        "image": resolution.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": _server_args(model, resolution, delivery),
        "ports": [
            {"name": "http", "containerPort": rest_port, "protocol": "TCP"},
            {"name": "grpc", "containerPort": grpc_port, "protocol": "TCP"},
        ],
        "env": env,
        "volumeMounts": mounts,
        "securityContext": container_security,
        # Compiling for a device can take minutes; liveness waits for the startup probe.
        "startupProbe": _probe(PROBE_PATHS["live"], "http", 5, 120),
        "livenessProbe": _probe(PROBE_PATHS["live"], "http", 10, 3),
        "readinessProbe": _probe(PROBE_PATHS["ready"], "http", 5, 2),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    resources = _resources(model, resolution, settings)
    if resources:
        server["resources"] = resources
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(resolution, settings),
        "containers": [server],
        "volumes": volumes,
        "terminationGracePeriodSeconds": 30,
    }
    if delivery.init_containers:
        pod_spec["initContainers"] = delivery.init_containers
    if _claims_devices(resolution):
        pod_spec["resourceClaims"] = [_pod_resource_claim(model)]
    node_selector = _node_selector(model, resolution, settings)
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    serving = model.spec.serving
    if serving.tolerations:
        pod_spec["tolerations"] = [t.wire() for t in serving.tolerations]
    if serving.affinity:
        pod_spec["affinity"] = serving.affinity
    spread = _topology_spread(model)
    if spread:
        pod_spec["topologySpreadConstraints"] = spread
    return {
        "metadata": {
            "labels": labels(model),
            "annotations": {CONFIG_HASH_ANNOTATION: config_hash},
        },
        "spec": pod_spec,
    }


# --- workload objects -------------------------------------------------------------------------


def _deployment(
    model: InferenceModel, resolution: Resolution, settings: Settings, config_hash: str
) -> dict[str, Any]:
    serving = model.spec.serving
    # An accelerator is usually all a node has: a surge pod would wait for the old pod's
    # device forever, so accelerator models replace pods one at a time instead.
    surge = 0 if resolution.device_claims else 1
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(model)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": 1 - surge},
        },
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": 600,
        "template": _pod_template(model, resolution, settings, config_hash),
    }
    if serving.autoscaling is None:
        spec = {"replicas": serving.replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(model, model.metadata.name),
        "spec": spec,
    }


def _service(model: InferenceModel) -> dict[str, Any]:
    service = model.spec.serving.service
    rest_port, grpc_port = _ports(model)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(model, model.metadata.name),
        "spec": {
            "type": service.type if service else "ClusterIP",
            "selector": selector(model),
            "ports": [
                {
                    "name": "http",
                    "port": rest_port,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
                {
                    "name": "grpc",
                    "port": grpc_port,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "grpc",
                },
            ],
        },
    }


def _autoscaler(model: InferenceModel) -> dict[str, Any] | None:
    autoscaling = model.spec.serving.autoscaling
    if autoscaling is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(model, model.metadata.name),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": model.metadata.name,
            },
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }


# Replicas on one node all go when it does: spread them unless the user said otherwise.
DEFAULT_SPREAD = TopologySpread(topology_key=HOSTNAME_LABEL)


def _topology_spread(model: InferenceModel) -> list[dict[str, Any]]:
    serving = model.spec.serving
    given = serving.topology_spread_constraints
    if given is None:
        several = serving.autoscaling is not None or serving.replicas > 1
        given = [DEFAULT_SPREAD] if several else []
    rendered = []
    for constraint in given:
        wire = constraint.wire()
        wire.setdefault("labelSelector", {"matchLabels": selector(model)})
        wire.setdefault("matchLabelKeys", ["pod-template-hash"])
        rendered.append(wire)
    return rendered


def _disruption_budget(model: InferenceModel) -> dict[str, Any] | None:
    serving = model.spec.serving
    if serving.autoscaling is None and serving.replicas < 2:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(model, model.metadata.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(model)}},
    }


def endpoints(model: InferenceModel, settings: Settings) -> dict[str, str]:
    rest_port, grpc_port = _ports(model)
    host = f"{model.metadata.name}.{model.metadata.namespace}.svc.{settings.cluster_domain}"
    found = {"rest": f"http://{host}:{rest_port}", "grpc": f"{host}:{grpc_port}"}
    if model.spec.model.task != "Tensor":
        found["openai"] = f"http://{host}:{rest_port}{OPENAI_API_PATH}"
    return found


def render(
    model: InferenceModel, settings: Settings, inventory: Inventory | None = None
) -> Rendered | Refusal:
    """Everything that serves ``model`` under ``settings``, or why it cannot be served.

    ``inventory``: the nodes as the node agent reported them (used with nodeDiscovery)."""
    try:
        resolution = resolve(model, settings, inventory)
    except RefusedError as refused:
        return refused.refusal
    config_map = _config_map(model)
    config_hash = hashlib.sha256(
        json.dumps(config_map.get("data", {}), sort_keys=True).encode()
    ).hexdigest()[:16]
    deployment = _deployment(model, resolution, settings, config_hash)
    optional = [
        _claim_template(model, resolution, settings),
        _autoscaler(model),
        _disruption_budget(model),
    ]
    objects = (
        config_map,
        deployment,
        _service(model),
        *(obj for obj in optional if obj is not None),
    )
    return Rendered(
        objects=objects,
        resolution=resolution,
        pod_security_level=pod_security_level(deployment["spec"]["template"]["spec"]),
        endpoints=endpoints(model, settings),
        selector=selector(model),
        model=model,
    )
