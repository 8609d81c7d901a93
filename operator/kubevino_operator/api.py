"""The ``InferenceModel`` API (kubevino.io/v1alpha1): the one source of the CRD schema.

Every field carries a description (``kubectl explain`` shows it); cross-field rules are
:class:`~kubevino_operator.celrules.Rule` objects, enforced here and by the API server alike.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from kubevino_common.devices import MISUSE_PATTERN, SYNTAX_PATTERN, parse_target
from kubevino_operator.celrules import ApiModel, Rule, has_key

GROUP = "kubevino.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceModel"
PLURAL = "inferencemodels"
SINGULAR = "inferencemodel"
SHORT_NAMES = ("im", "ovm")

AcceleratorName = Literal[
    "cpu", "intel-gpu", "intel-gpu-wsl2", "intel-npu", "ncs2", "hddl", "nvidia"
]
AccessMode = Literal["DevicePlugin", "HostDevices", "ResourceClaim"]
PodSecurityLevel = Literal["restricted", "baseline", "privileged"]
RuntimeChoice = Literal["Auto", "Kubevino", "ModelServer"]
# What the model files are, and so which API serves them: Tensor models answer KServe v2 and
# TF-Serving; the others are OpenVINO GenAI pipelines behind Model Server's OpenAI-compatible /v3.
ModelTask = Literal["Tensor", "TextGeneration", "Embeddings", "Rerank"]
GENERATIVE_TASKS: tuple[ModelTask, ...] = ("TextGeneration", "Embeddings", "Rerank")
# Model Server's (and kubevino-serve's) --task value of each generative task.
SERVER_TASK: dict[ModelTask, str] = {
    "TextGeneration": "text_generation",
    "Embeddings": "embeddings",
    "Rerank": "rerank",
}

# Targets the kubevino runtime (current OpenVINO) cannot drive: MYRIAD and HDDL plugins left
# OpenVINO after 2022.3; the NVIDIA plugin lives in openvino_contrib builds of Model Server.
MODEL_SERVER_ONLY_FAMILIES = ("MYRIAD", "HDDL", "NVIDIA")
_MODEL_SERVER_ONLY_PATTERN = r"(^|[:,-])(" + "|".join(MODEL_SERVER_ONLY_FAMILIES) + r")([.(,]|$)"
# What OpenVINO GenAI's pipelines cannot run on: the families above have no GenAI plugin at all,
# and MULTI and BATCH are not among the targets Model Server's --task accepts (CPU, GPU, NPU,
# AUTO, HETERO).
_NOT_GENERATIVE_PATTERN = r"^(MULTI|BATCH):|" + _MODEL_SERVER_ONLY_PATTERN

_NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# The name becomes a Service name: a DNS-1035 label (starts with a letter, at most 63).
NAME_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX_LENGTH = 63
_DIMS = r"\(\s*-?[0-9]+(:[0-9]+)?(\s*,\s*-?[0-9]+(:[0-9]+)?)*\s*\)"
SHAPE_PATTERN = rf"^(auto|{_DIMS})$"
_QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?"
    r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _target_device_is_valid(value: str) -> str:
    parse_target(value)
    return value


IntOrString = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]
Quantity = Annotated[
    int | str,
    AfterValidator(
        lambda value: (
            value
            if isinstance(value, int) or re.fullmatch(_QUANTITY_PATTERN, value)
            else _raise(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2Gi, 4)")
        )
    ),
    WithJsonSchema(
        {"x-kubernetes-int-or-string": True, "pattern": _QUANTITY_PATTERN},
    ),
]
TargetDevice = Annotated[
    str,
    Field(min_length=1, max_length=256),
    AfterValidator(_target_device_is_valid),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 256,
            "x-kubernetes-validations": [
                {
                    "rule": f"self.matches('{SYNTAX_PATTERN}')",
                    "message": "targetDevice must follow OpenVINO's grammar without spaces: "
                    "CPU, GPU.1, NPU, AUTO, AUTO:GPU,CPU, AUTO:-CPU, MULTI:CPU(2),GPU(2), "
                    "HETERO:GPU,CPU or BATCH:GPU(4); device names are upper case "
                    "(run `kubevino render` for the exact position of the problem)",
                },
                {
                    "rule": f"!self.matches('{MISUSE_PATTERN}')",
                    "message": "targetDevice misuses a virtual device: MULTI, HETERO and BATCH "
                    "need a device list (MULTI:GPU,CPU), virtual devices cannot be nested, and "
                    "NVIDIA only runs alone",
                },
            ],
        }
    ),
]


def _raise(message: str) -> Any:
    raise ValueError(message)


def _count_set(*values: object) -> int:
    return sum(value is not None for value in values)


def _one_of_cel(fields: tuple[str, ...]) -> str:
    return " + ".join(f"(has(self.{name}) ? 1 : 0)" for name in fields) + " == 1"


# --- model source -----------------------------------------------------------------------------


class SecretKeyRef(ApiModel):
    """A Secret in the InferenceModel's namespace; the operator reads it, never changes it."""

    name: str = Field(description="Name of the Secret.", max_length=253)


class PvcSource(ApiModel):
    """A PersistentVolumeClaim holding the model in Model Server layout <base>/<version>/."""

    claim_name: str = Field(description="Name of the PVC in the same namespace.", max_length=253)
    sub_path: str | None = Field(
        default=None,
        description="Directory inside the volume that holds the version folders.",
        max_length=1024,
    )


class HttpSource(ApiModel):
    """An HTTP(S) location fetched by an init container before the server starts."""

    url: str = Field(
        description="http:// or https:// URL of a model file (served as version 1; a .gguf "
        "file's name also tells a TextGeneration server which file to serve) or of a .tar, "
        ".tar.gz, .tgz or .zip archive holding version folders (or the files of one version).",
        pattern=r"^https?://",
        max_length=2048,
    )
    sha256: dict[str, str] | None = Field(
        default=None,
        description="Expected SHA-256 (hex) per file path in the model as served (e.g. "
        "1/model.xml); a mismatch fails the fetch.",
    )


class S3Source(ApiModel):
    """An S3 (or S3-compatible) prefix fetched by an init container before the server starts."""

    uri: str = Field(
        description="s3://bucket/prefix holding the version folders.",
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
        max_length=2048,
    )
    endpoint: str | None = Field(
        default=None,
        description="Endpoint URL for S3-compatible stores (MinIO, Ceph RGW, ...).",
        pattern=r"^https?://",
        max_length=2048,
    )
    region: str | None = Field(default=None, description="Bucket region.", max_length=64)
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally "
        "AWS_SESSION_TOKEN); omit for anonymous access or node/workload identity.",
    )
    verify_tls: bool = Field(
        default=True, description="Verify the endpoint's TLS certificate (on by default)."
    )
    sha256: dict[str, str] | None = Field(
        default=None,
        description="Expected SHA-256 (hex) per file path in the model (e.g. 1/model.bin); a "
        "mismatch fails the fetch.",
    )


class HostPathSource(ApiModel):
    """A directory on the node (development only: ties the pod to nodes that have it)."""

    path: str = Field(description="Absolute path on the node.", pattern=r"^/", max_length=1024)


class ImageSource(ApiModel):
    """An OCI image whose filesystem carries the model (a "modelcar")."""

    reference: str = Field(description="Image reference, e.g. registry/models/resnet:1.")
    path: str = Field(
        default="/models",
        description="Directory inside the image that holds the version folders.",
        pattern=r"^/",
    )


_SOURCES = ("pvc", "http", "s3", "hostPath", "image")


class ModelSource(ApiModel):
    """Where the model comes from: set exactly one."""

    cel_rules = (
        Rule(
            cel=_one_of_cel(_SOURCES),
            message="model.source must set exactly one of pvc, http, s3, hostPath, image",
            holds=lambda s: _count_set(s.pvc, s.http, s.s3, s.host_path, s.image) == 1,
        ),
    )

    pvc: PvcSource | None = Field(default=None, description="Serve from a PVC.")
    http: HttpSource | None = Field(default=None, description="Fetch over HTTP(S).")
    s3: S3Source | None = Field(default=None, description="Fetch from S3.")
    host_path: HostPathSource | None = Field(
        default=None, description="Serve from a node directory (development)."
    )
    image: ImageSource | None = Field(default=None, description="Serve from an OCI image.")


class DownloadCache(ApiModel):
    """Where fetched models are kept so that replicas and restarts do not download again."""

    claim_name: str = Field(
        description="PVC shared by the replicas (ReadWriteMany, or ReadWriteOnce when they "
        "share a node). The first pod downloads, the others find it there; point "
        "performance.modelCache.claimName at the same PVC to keep compiled models there too.",
        max_length=253,
    )


class LatestVersions(ApiModel):
    """Serve the newest N versions."""

    num_versions: int = Field(default=1, ge=1, le=100, description="How many newest versions.")


class SpecificVersions(ApiModel):
    """Serve exactly these versions."""

    versions: list[int] = Field(
        description="Version numbers (folder names).", min_length=1, max_length=100
    )


class AllVersions(ApiModel):
    """Serve every version found."""


class VersionPolicy(ApiModel):
    """Which versions to serve (Model Server's model_version_policy): set exactly one."""

    cel_rules = (
        Rule(
            cel=_one_of_cel(("latest", "specific", "all")),
            message="versionPolicy must set exactly one of latest, specific, all",
            holds=lambda p: _count_set(p.latest, p.specific, p.all) == 1,
        ),
    )

    latest: LatestVersions | None = Field(default=None, description="Serve the newest N.")
    specific: SpecificVersions | None = Field(default=None, description="Serve listed versions.")
    all: AllVersions | None = Field(default=None, description="Serve all versions.")

    def to_model_server(self) -> dict[str, Any]:
        if self.specific is not None:
            return {"specific": {"versions": list(self.specific.versions)}}
        if self.all is not None:
            return {"all": {}}
        latest = self.latest or LatestVersions()
        return {"latest": {"num_versions": latest.num_versions}}


class ModelSpec(ApiModel):
    """The model to serve."""

    cel_rules = (
        Rule(
            cel="!has(self.cache) || has(self.source.http) || has(self.source.s3)",
            message="model.cache keeps downloads: it needs an http or s3 source",
            holds=lambda m: m.cache is None or m.source.http is not None or m.source.s3 is not None,
        ),
        Rule(
            cel="!has(self.versionPolicy) || !has(self.task) || self.task == 'Tensor'",
            message="model.versionPolicy picks versions of a Tensor model; a generative model "
            "is one directory without versions: remove versionPolicy",
            holds=lambda m: m.version_policy is None or m.task == "Tensor",
        ),
        Rule(
            cel="!has(self.ggufFile) || (has(self.task) && self.task == 'TextGeneration')",
            message="model.ggufFile names a GGUF model's file, which serves task TextGeneration "
            "only",
            holds=lambda m: m.gguf_file is None or m.task == "TextGeneration",
        ),
    )

    name: str | None = Field(
        default=None,
        description="Name clients use in requests (defaults to the InferenceModel's name).",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=128,
    )
    source: ModelSource = Field(
        description="Where the model files come from. A generative task reads one OpenVINO "
        "GenAI model directory (as `optimum-cli export openvino` writes it, tokenizer and "
        "detokenizer IRs included) or, for TextGeneration, a .gguf file, instead of version "
        "folders: the source's directory itself, or version 1 of an http/s3 download (an "
        "archive of the directory's files, or a bare .gguf file, lands there; the fetch fails "
        "with InvalidModel when version 1 holds neither)."
    )
    task: ModelTask = Field(
        default="Tensor",
        description="What the model does, which decides the API that serves it. Tensor: an "
        "OpenVINO-readable model over KServe v2 and TF-Serving (REST and gRPC). TextGeneration, "
        "Embeddings, Rerank: an OpenVINO GenAI pipeline behind Model Server's OpenAI-compatible "
        "REST API under /v3 (chat/completions and completions, embeddings, rerank), tuned in "
        "spec.generation.",
    )
    gguf_file: str | None = Field(
        default=None,
        description="TextGeneration from a GGUF model: the .gguf file to serve, inside the "
        "model directory (version 1 of an http/s3 download). The ModelServer runtime needs it "
        "(its --model_path reads a GenAI directory unless --gguf_filename names the file), "
        "except from an http URL naming a .gguf file, which names it already; the Kubevino "
        "runtime finds a directory's one .gguf file without it. Needed wherever the directory "
        "holds several (e.g. one per quantization).",
        pattern=r"^[^/]+\.[gG][gG][uU][fF]$",
        max_length=255,
    )
    version_policy: VersionPolicy | None = Field(
        default=None, description="Which versions to serve (default: the latest one)."
    )
    cache: DownloadCache | None = Field(
        default=None,
        description="Keep HTTP/S3 downloads on a shared PVC (default: each pod downloads into "
        "its own emptyDir).",
    )


# --- device -----------------------------------------------------------------------------------


class DeviceClaimSpec(ApiModel):
    """How a ResourceClaim-mode pod asks Dynamic Resource Allocation for its devices: a claim
    template the operator renders (narrowed by these fields), or a claim the user manages."""

    cel_rules = (
        Rule(
            cel="!(has(self.claimName) && has(self.claimTemplateName))",
            message="name claimName or claimTemplateName, not both",
            holds=lambda c: c.claim_name is None or c.claim_template_name is None,
        ),
        Rule(
            cel="!(has(self.claimName) || has(self.claimTemplateName)) || !(has("
            "self.deviceClassName) || has(self.selectors) || has(self.minMemory))",
            message="a claim you manage (claimName, claimTemplateName) carries its own device "
            "class and selectors: drop deviceClassName, selectors and minMemory",
            holds=lambda c: (
                (c.claim_name is None and c.claim_template_name is None)
                or (c.device_class_name is None and c.selectors is None and c.min_memory is None)
            ),
        ),
    )

    device_class_name: str | None = Field(
        default=None,
        max_length=253,
        description="The DeviceClass to allocate from; default the accelerator profile's "
        "(gpu.intel.com for intel-gpu), renamable in the operator settings.",
    )
    selectors: list[str] | None = Field(
        default=None,
        max_length=8,
        description="CEL expressions a device must satisfy, over its driver's attributes and "
        'capacity, e.g. device.attributes["gpu.intel.com"].family == "Arc".',
    )
    min_memory: Quantity | None = Field(
        default=None,
        description="The least device memory (the driver's memory capacity) a device needs.",
    )
    claim_name: str | None = Field(
        default=None,
        max_length=253,
        description="An existing ResourceClaim you manage, shared by every pod of the model.",
    )
    claim_template_name: str | None = Field(
        default=None,
        max_length=253,
        description="An existing ResourceClaimTemplate you manage: one claim per pod from it.",
    )

    @property
    def user_managed(self) -> bool:
        return self.claim_name is not None or self.claim_template_name is not None


class DeviceSpec(ApiModel):
    """Which OpenVINO device runs the model, and how the pod reaches it."""

    cel_rules = (
        Rule(
            cel="!has(self.resourceClaim) || !has(self.accessMode) || "
            "self.accessMode == 'ResourceClaim'",
            message="resourceClaim needs accessMode ResourceClaim",
            holds=lambda d: d.resource_claim is None or d.access_mode in (None, "ResourceClaim"),
        ),
    )

    target_device: TargetDevice = Field(
        default="CPU",
        description="OpenVINO target_device: CPU, GPU, GPU.1, NPU, MYRIAD, HDDL, NVIDIA, AUTO, "
        "AUTO:GPU,CPU, AUTO:-CPU, MULTI:CPU(2),GPU(2), HETERO:GPU,CPU, BATCH:GPU(4), or a "
        "device instance such as MYRIAD.1.2-ma2480.",
    )
    count: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Devices of each accelerator kind one pod claims; by default as many as "
        "the target names (GPU.1 needs two GPUs visible), at least one.",
    )
    access_mode: AccessMode | None = Field(
        default=None,
        description="DevicePlugin: request the device plugin's extended resource "
        "(unprivileged). HostDevices: mount the node's device nodes (needs a privileged "
        "container, which the operator settings must allow). ResourceClaim: Dynamic Resource "
        "Allocation (resource.k8s.io/v1) through the accelerator's DRA driver (unprivileged, "
        "no render group). Default from operator settings.",
    )
    resource_claim: DeviceClaimSpec | None = Field(
        default=None, description="What a ResourceClaim-mode pod asks for."
    )
    accelerators: list[AcceleratorName] | None = Field(
        default=None,
        max_length=7,
        description="Accelerator profiles the pod gets: what a bare AUTO may use, and which "
        "variant serves a device family (intel-gpu-wsl2 instead of intel-gpu for GPU). "
        "Default from operator settings.",
    )


# --- performance ------------------------------------------------------------------------------

_TYPED_PLUGIN_KEYS = {
    "PERFORMANCE_HINT": "hint",
    "NUM_STREAMS": "numStreams",
    "MODEL_PRIORITY": "modelPriority",
    "INFERENCE_PRECISION_HINT": "inferencePrecision",
    "PERFORMANCE_HINT_NUM_REQUESTS": "numRequests",
    "CACHE_DIR": "modelCache",
}


def _plugin_key_rule(key: str, field: str) -> Rule:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()
    return Rule(
        cel=f"!(has(self.{field}) && has(self.pluginConfig) && '{key}' in self.pluginConfig)",
        message=f"set {field} or pluginConfig.{key}, not both",
        holds=lambda p: getattr(p, snake) is None or not has_key(p.plugin_config, key),
    )


class ModelCache(ApiModel):
    """OpenVINO's compiled-model cache (CACHE_DIR): later starts skip compilation."""

    enabled: bool = Field(default=True, description="Turn the compiled-model cache on.")
    claim_name: str | None = Field(
        default=None,
        description="PVC to keep the cache on (shared by replicas and restarts); an emptyDir "
        "that lives as long as the pod when unset.",
        max_length=253,
    )
    size_limit: Quantity | None = Field(
        default=None, description="Size limit of the emptyDir cache."
    )


class DynamicBatching(ApiModel):
    """Requests that wait for the model at the same time run as one inference (kubevino
    runtime, Tensor models)."""

    cel_rules = (
        Rule(
            cel="!has(self.maxDelayMicroseconds) || self.maxDelayMicroseconds == 0 || "
            "self.maxBatchSize > 1",
            message="maxDelayMicroseconds waits for a batch to fill, but maxBatchSize 1 turns "
            "batching off: raise maxBatchSize or drop the delay",
            holds=lambda b: not b.max_delay_microseconds or b.max_batch_size > 1,
        ),
    )

    max_batch_size: int = Field(
        ge=1,
        le=1024,
        description="Most requests' rows one inference holds; 1 turns dynamic batching off. "
        "Without batchSize, shape or shapes, the model's batch dimension becomes 1 to this.",
    )
    max_delay_microseconds: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="How long an idle infer request waits for a batch to fill. Default 0: only "
        "requests already waiting join, so a lone request never waits.",
    )


class PerformanceSpec(ApiModel):
    """OpenVINO performance settings; typed fields win over nothing: set each in one place."""

    cel_rules = (
        Rule(
            cel="!((has(self.hint) || (has(self.pluginConfig) && 'PERFORMANCE_HINT' in "
            "self.pluginConfig)) && (has(self.numStreams) || (has(self.pluginConfig) && "
            "'NUM_STREAMS' in self.pluginConfig)))",
            message="a performance hint and NUM_STREAMS must not be used together: the hint "
            "chooses the number of streams; drop one of them",
            holds=lambda p: (
                not (
                    (p.hint is not None or has_key(p.plugin_config, "PERFORMANCE_HINT"))
                    and (p.num_streams is not None or has_key(p.plugin_config, "NUM_STREAMS"))
                )
            ),
        ),
        Rule(
            cel="!(has(self.shape) && has(self.shapes))",
            message="set shape (every input) or shapes (per input), not both",
            holds=lambda p: p.shape is None or p.shapes is None,
        ),
        *(
            _plugin_key_rule(key, field)
            for key, field in _TYPED_PLUGIN_KEYS.items()
            if key != "CACHE_DIR"
        ),
        Rule(
            cel="!(has(self.dynamicBatching) && has(self.batchSize) && "
            "self.dynamicBatching.maxBatchSize > 1)",
            message="dynamicBatching joins requests along a dynamic batch dimension, which "
            "batchSize fixes: remove batchSize (dynamicBatching makes the batch 1 to "
            "maxBatchSize)",
            holds=lambda p: (
                p.dynamic_batching is None
                or p.batch_size is None
                or p.dynamic_batching.max_batch_size == 1
            ),
        ),
        Rule(
            cel="!(has(self.pluginConfig) && 'CACHE_DIR' in self.pluginConfig)",
            message="pluginConfig.CACHE_DIR is managed by the operator: use modelCache",
            holds=lambda p: not has_key(p.plugin_config, "CACHE_DIR"),
        ),
    )

    hint: Literal["LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"] | None = Field(
        default=None,
        description="PERFORMANCE_HINT: LATENCY, THROUGHPUT, or CUMULATIVE_THROUGHPUT (AUTO or "
        "MULTI only: runs on all candidate devices at once).",
    )
    num_requests: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Infer requests the server keeps in flight (Model Server's nireq); "
        "default: the compiled model's optimal number.",
    )
    num_streams: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="NUM_STREAMS; mutually exclusive with a hint.",
    )
    model_priority: Literal["HIGH", "MEDIUM", "LOW"] | None = Field(
        default=None,
        description="MODEL_PRIORITY: which models get the best device when they compete.",
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=4096, description="Reshape the batch dimension to this size."
    )
    shape: str | None = Field(
        default=None,
        description="Shape for every input: auto, or dimensions such as (1,3,224,224); "
        "ranges as min:max.",
        pattern=SHAPE_PATTERN,
        max_length=256,
    )
    shapes: dict[str, Annotated[str, Field(pattern=SHAPE_PATTERN, max_length=256)]] | None = Field(
        default=None,
        description="Shape per input name, each auto or dimensions like (1,3,224,224).",
        max_length=64,
    )
    inference_precision: Literal["f32", "f16", "bf16"] | None = Field(
        default=None, description="INFERENCE_PRECISION_HINT."
    )
    model_cache: ModelCache | None = Field(
        default=None, description="Compiled-model cache (off unless set)."
    )
    dynamic_batching: DynamicBatching | None = Field(
        default=None,
        description="Join requests that wait at the same time into one inference (kubevino "
        "runtime, Tensor models). Default: off.",
    )
    plugin_config: dict[str, IntOrString] | None = Field(
        default=None,
        max_length=64,
        description="Any other OpenVINO property, passed as Model Server's plugin_config.",
    )

    def effective_plugin_config(self) -> dict[str, int | str]:
        """The properties handed to OpenVINO: typed fields merged into pluginConfig."""
        merged: dict[str, int | str] = dict(self.plugin_config or {})
        typed: dict[str, int | str | None] = {
            "PERFORMANCE_HINT": self.hint,
            "NUM_STREAMS": self.num_streams,
            "MODEL_PRIORITY": self.model_priority,
            "INFERENCE_PRECISION_HINT": self.inference_precision,
        }
        merged.update({key: value for key, value in typed.items() if value is not None})
        return dict(sorted(merged.items()))


# --- generation -------------------------------------------------------------------------------

# The leading part of a draft model's directory name: Model Server turns "/" in it into "-",
# so only a directory directly inside the model directory means the same to both.
_DIRECTORY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def static_pipeline(target_device: str) -> bool:
    """Whether text generation runs GenAI's static LLMPipeline rather than continuous batching:
    wherever the target names NPU, the one device without continuous batching (the rule both
    kubevino-serve and Model Server apply to the AUTO pipeline type)."""
    return "NPU" in target_device


class DraftModel(ApiModel):
    """A smaller model of the same family proposing tokens that the main model checks
    (speculative decoding): faster generation for the same output."""

    directory: str = Field(
        description="Directory inside the model directory that holds the draft model (an "
        "OpenVINO GenAI model directory too), e.g. draft.",
        pattern=_DIRECTORY_NAME_PATTERN,
        max_length=255,
    )


class TextGenerationSpec(ApiModel):
    """Text generation settings: Model Server's --task text_generation options."""

    kv_cache_size_gb: int | None = Field(
        default=None,
        alias="kvCacheSizeGB",
        ge=0,
        le=4096,
        description="KV cache size in GB (Model Server's cache_size); 0 or unset: it grows as "
        "needed. Continuous batching only (not NPU).",
    )
    max_concurrent_sequences: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="Sequences one step of continuous batching holds (Model Server's "
        "max_num_seqs, default 256); requests beyond it wait. Continuous batching only.",
    )
    max_batched_tokens: int | None = Field(
        default=None,
        ge=1,
        le=1048576,
        description="Tokens one step of continuous batching processes (Model Server's "
        "max_num_batched_tokens; default GenAI's). Continuous batching only.",
    )
    prefix_caching: bool | None = Field(
        default=None,
        description="Reuse the KV cache of prompt prefixes shared between requests (Model "
        "Server's enable_prefix_caching, default true). Continuous batching only.",
    )
    dynamic_split_fuse: bool | None = Field(
        default=None,
        description="Split long prompts across steps, fused with generation (Model Server's "
        "dynamic_split_fuse, default true). Continuous batching only.",
    )
    kv_cache_precision: (
        # One value: pydantic would write "const", which structural schemas do not allow.
        Annotated[Literal["u8"], WithJsonSchema({"type": "string", "enum": ["u8"]})] | None
    ) = Field(
        default=None,
        description="u8 keeps the KV cache in 8 bits (about half the memory); unset: the "
        "device's precision (Model Server's kv_cache_precision).",
    )
    max_prompt_length: int | None = Field(
        default=None,
        ge=1,
        le=1048576,
        description="NPU only, and required there: the longest prompt, in tokens, the static "
        "pipeline is compiled for (Model Server's max_prompt_len); longer prompts are refused.",
    )
    min_response_length: int | None = Field(
        default=None,
        ge=1,
        le=1048576,
        description="NPU only, and required there: tokens the compiled KV cache keeps for the "
        "response beyond maxPromptLength (GenAI's MIN_RESPONSE_LEN, passed as a plugin "
        "property). Prompt and response together never exceed the sum of the two.",
    )
    draft_model: DraftModel | None = Field(
        default=None,
        description="Speculative decoding with a draft model (Model Server's "
        "draft_source_model). Needs serving.runtime ModelServer: kubevino-serve does not "
        "implement it. Continuous batching only.",
    )
    chat_template: str | None = Field(
        default=None,
        min_length=1,
        max_length=65536,
        description="A Jinja chat template used instead of the model's own (what Model Server "
        "reads from chat_template.jinja in the model directory). kubevino runtime only: the "
        "stock Model Server reads it from the model directory alone, so put the file there.",
    )


# What only continuous batching has: NPU's static pipeline would ignore them, so they are refused
# there rather than accepted and ignored.
CONTINUOUS_BATCHING_FIELDS = (
    "kvCacheSizeGB",
    "maxConcurrentSequences",
    "maxBatchedTokens",
    "prefixCaching",
    "dynamicSplitFuse",
    "draftModel",
)


class EmbeddingsSpec(ApiModel):
    """Embedding settings: Model Server's --task embeddings options."""

    normalize: bool | None = Field(
        default=None, description="L2-normalize each embedding (default true)."
    )
    pooling: Literal["CLS", "LAST", "MEAN"] | None = Field(
        default=None,
        description="How token states become one embedding: CLS (the default), LAST or MEAN.",
    )


class GenerationSpec(ApiModel):
    """Settings of a generative model (spec.model.task other than Tensor): the section of
    its task, Rerank having none."""

    text_generation: TextGenerationSpec | None = Field(
        default=None, description="For task TextGeneration."
    )
    embeddings: EmbeddingsSpec | None = Field(default=None, description="For task Embeddings.")


# --- serving ----------------------------------------------------------------------------------


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler owned by the InferenceModel; it then owns the replica count."""

    cel_rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="autoscaling.minReplicas must not exceed maxReplicas",
            holds=lambda a: a.min_replicas <= a.max_replicas,
        ),
    )

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Lower bound.")
    max_replicas: int = Field(ge=1, le=1000, description="Upper bound.")
    target_cpu_utilization: int = Field(
        default=80, ge=1, le=100, description="Average CPU utilisation (percent) to aim for."
    )


class ServiceSpec(ApiModel):
    """The Service in front of the model servers."""

    cel_rules = (
        Rule(
            cel="self.restPort != self.grpcPort",
            message="service.restPort and service.grpcPort must differ",
            holds=lambda s: s.rest_port != s.grpc_port,
        ),
    )

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP", description="Service type."
    )
    rest_port: int = Field(
        default=8000, ge=1, le=65535, description="Port of the REST API (KServe v2, TF-Serving)."
    )
    grpc_port: int = Field(
        default=9000, ge=1, le=65535, description="Port of the gRPC API (KServe v2)."
    )


class ResourceRequirements(ApiModel):
    """CPU and memory for the server container (device resources are added by the operator)."""

    limits: dict[str, Quantity] | None = Field(default=None, description="Resource limits.")
    requests: dict[str, Quantity] | None = Field(default=None, description="Resource requests.")


class Toleration(ApiModel):
    """A Kubernetes toleration, as in a pod spec."""

    key: str | None = Field(default=None, description="Taint key (empty with Exists: all).")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default Equal)."
    )
    value: str | None = Field(default=None, description="Taint value for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match (empty: all)."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated."
    )


class TopologySpread(ApiModel):
    """A Kubernetes pod topology spread constraint; the label selector defaults to this
    model's own pods."""

    max_skew: int = Field(
        default=1, ge=1, description="How unevenly the pods may be spread (default 1)."
    )
    topology_key: str = Field(
        min_length=1,
        max_length=317,
        description="The node label whose values are the domains, e.g. kubernetes.io/hostname "
        "or topology.kubernetes.io/zone.",
    )
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(
        default="ScheduleAnyway",
        description="DoNotSchedule keeps a pod Pending rather than skew more; ScheduleAnyway "
        "(default) only prefers the spread.",
    )
    label_selector: dict[str, Any] | None = Field(
        default=None,
        description="The pods counted (a label selector); default: this model's pods.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    match_label_keys: list[str] | None = Field(
        default=None,
        max_length=16,
        description="Pod label keys whose values narrow the pods counted; default "
        "pod-template-hash, so a rollout's old pods do not count.",
    )
    min_domains: int | None = Field(
        default=None, ge=1, description="With DoNotSchedule: the fewest domains to spread over."
    )


class ServingSpec(ApiModel):
    """How the model servers run."""

    cel_rules = (
        Rule(
            cel="!has(self.autoscaling) || (has(self.resources) && "
            "has(self.resources.requests) && 'cpu' in self.resources.requests)",
            message="autoscaling scales on CPU utilisation, which needs "
            "serving.resources.requests.cpu",
            holds=lambda s: (
                s.autoscaling is None
                or (s.resources is not None and has_key(s.resources.requests, "cpu"))
            ),
        ),
    )

    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Pods to run; ignored while autoscaling is set (the HPA owns the count).",
    )
    autoscaling: Autoscaling | None = Field(
        default=None, description="Scale with a HorizontalPodAutoscaler instead."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="CPU and memory of the server container."
    )
    service: ServiceSpec | None = Field(default=None, description="The Service.")
    node_selector: dict[str, str] | None = Field(
        default=None,
        description="Extra node labels the pods require (merged over the accelerator's).",
    )
    tolerations: list[Toleration] | None = Field(
        default=None, description="Tolerations for tainted accelerator nodes.", max_length=64
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description="A Kubernetes pod affinity block, used as given.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    topology_spread_constraints: list[TopologySpread] | None = Field(
        default=None,
        max_length=8,
        description="How the pods spread over nodes or zones. Default with several replicas "
        "(or autoscaling): over nodes (kubernetes.io/hostname), maxSkew 1, ScheduleAnyway. An "
        "empty list renders none.",
    )
    image: str | None = Field(
        default=None, description="Server image override (default from operator settings)."
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Front-end processes in each pod, sharing its ports (kubevino runtime "
        "only). One serves up to about a thousand requests a second; more lift that on many "
        "cores. They feed one engine process that holds the one compiled copy of the model. "
        "Default 1.",
    )
    runtime: RuntimeChoice = Field(
        default="Auto",
        description="Kubevino: the kubevino runtime (current OpenVINO). ModelServer: a stock "
        "OpenVINO Model Server 2022.3 image, the last with MYRIAD and HDDL plugins. Auto: "
        "ModelServer when the target needs MYRIAD, HDDL or NVIDIA, else Kubevino.",
    )


_TASK_CEL = "(has(self.model.task) ? self.model.task : 'Tensor')"
_TARGET_CEL = (
    "(has(self.device) && has(self.device.targetDevice) ? self.device.targetDevice : 'CPU')"
)
_TEXT_CEL = "(has(self.generation) && has(self.generation.textGeneration))"
_TEXT = "self.generation.textGeneration"
_TENSOR_ONLY_PERFORMANCE = ("batchSize", "shape", "shapes", "numRequests", "dynamicBatching")
# GenAI properties the typed text generation fields set.
_TYPED_GENAI_KEYS = ("MAX_PROMPT_LEN", "MIN_RESPONSE_LEN", "KV_CACHE_PRECISION")


def _text_settings(spec: InferenceModelSpec) -> dict[str, Any]:
    """spec.generation.textGeneration as the API server sees it ({} when absent)."""
    if spec.generation is None or spec.generation.text_generation is None:
        return {}
    return spec.generation.text_generation.wire()


def _performance_fields(spec: InferenceModelSpec) -> dict[str, Any]:
    return spec.performance.wire() if spec.performance is not None else {}


def _generation_rules() -> tuple[Rule, ...]:
    """What a task admits: generation settings only for their task, no tensor reshaping for a
    pipeline, only the targets GenAI runs on, and each pipeline's own settings."""
    npu = f"{_TARGET_CEL}.contains('NPU')"
    cb_fields = " || ".join(f"has({_TEXT}.{name})" for name in CONTINUOUS_BATCHING_FIELDS)
    return (
        Rule(
            cel=f"!has(self.generation) || {_TASK_CEL} != 'Tensor'",
            message="spec.generation configures generative models: set spec.model.task to "
            "TextGeneration, Embeddings or Rerank, or remove spec.generation",
            holds=lambda s: s.generation is None or s.model.task != "Tensor",
        ),
        Rule(
            cel=f"!{_TEXT_CEL} || {_TASK_CEL} == 'TextGeneration'",
            message="generation.textGeneration applies to spec.model.task TextGeneration only",
            holds=lambda s: (
                s.generation is None
                or s.generation.text_generation is None
                or s.model.task == "TextGeneration"
            ),
        ),
        Rule(
            cel="!(has(self.generation) && has(self.generation.embeddings)) || "
            f"{_TASK_CEL} == 'Embeddings'",
            message="generation.embeddings applies to spec.model.task Embeddings only",
            holds=lambda s: (
                s.generation is None
                or s.generation.embeddings is None
                or s.model.task == "Embeddings"
            ),
        ),
        Rule(
            cel=f"{_TASK_CEL} == 'Tensor' || !has(self.performance) || !("
            + " || ".join(f"has(self.performance.{name})" for name in _TENSOR_ONLY_PERFORMANCE)
            + ")",
            message="performance.batchSize, shape, shapes, numRequests and dynamicBatching "
            "reshape, pool and batch a Tensor model's infer requests; a generative pipeline "
            "sizes and batches itself: remove them (spec.generation has its settings)",
            holds=lambda s: (
                s.model.task == "Tensor"
                or not set(_TENSOR_ONLY_PERFORMANCE) & set(_performance_fields(s))
            ),
        ),
        Rule(
            cel=f"{_TASK_CEL} == 'Tensor' || !{_TARGET_CEL}.matches('{_NOT_GENERATIVE_PATTERN}')",
            message="generative tasks run on OpenVINO GenAI, which drives CPU, GPU, NPU, AUTO "
            "and HETERO targets: MYRIAD, HDDL and NVIDIA have no GenAI plugin, and MULTI and "
            "BATCH do not run its pipelines",
            holds=lambda s: (
                s.model.task == "Tensor"
                or not re.search(_NOT_GENERATIVE_PATTERN, s.device.target_device)
            ),
        ),
        Rule(
            cel=f"!({_TASK_CEL} == 'TextGeneration' && {npu}) || ({_TEXT_CEL} && "
            f"has({_TEXT}.maxPromptLength) && has({_TEXT}.minResponseLength))",
            message="text generation on NPU runs a static pipeline compiled for fixed lengths: "
            "set generation.textGeneration.maxPromptLength and minResponseLength (Model "
            "Server's defaults are 1024 and 128 tokens)",
            holds=lambda s: (
                not (s.model.task == "TextGeneration" and static_pipeline(s.device.target_device))
                or {"maxPromptLength", "minResponseLength"} <= set(_text_settings(s))
            ),
        ),
        Rule(
            cel=f"!{_TEXT_CEL} || {npu} || "
            f"!(has({_TEXT}.maxPromptLength) || has({_TEXT}.minResponseLength))",
            message="generation.textGeneration.maxPromptLength and minResponseLength size NPU's "
            "static pipeline; other targets run continuous batching, which needs no such "
            "bounds: remove them",
            holds=lambda s: (
                static_pipeline(s.device.target_device)
                or not {"maxPromptLength", "minResponseLength"} & set(_text_settings(s))
            ),
        ),
        Rule(
            cel=f"!{_TEXT_CEL} || !{npu} || !({cb_fields})",
            message="generation.textGeneration's "
            + ", ".join(CONTINUOUS_BATCHING_FIELDS)
            + " configure continuous batching, which NPU's static pipeline does not run: "
            "remove them (NPU would ignore them)",
            holds=lambda s: (
                not static_pipeline(s.device.target_device)
                or not set(CONTINUOUS_BATCHING_FIELDS) & set(_text_settings(s))
            ),
        ),
        Rule(
            cel=f"{_TASK_CEL} == 'Tensor' || !(has(self.performance) && "
            "has(self.performance.pluginConfig) && ("
            + " || ".join(f"'{key}' in self.performance.pluginConfig" for key in _TYPED_GENAI_KEYS)
            + "))",
            message="performance.pluginConfig must not set "
            + ", ".join(_TYPED_GENAI_KEYS)
            + " for a generative model: use generation.textGeneration's maxPromptLength, "
            "minResponseLength and kvCachePrecision (Model Server refuses a property set twice)",
            holds=lambda s: (
                s.model.task == "Tensor"
                or s.performance is None
                or not any(has_key(s.performance.plugin_config, key) for key in _TYPED_GENAI_KEYS)
            ),
        ),
        Rule(
            cel=f"!({_TEXT_CEL} && has({_TEXT}.draftModel)) || (has(self.serving) && "
            "has(self.serving.runtime) && self.serving.runtime == 'ModelServer')",
            message="generation.textGeneration.draftModel (speculative decoding) is served by "
            "the stock Model Server only: set serving.runtime to ModelServer, or remove "
            "draftModel (kubevino-serve does not implement it)",
            holds=lambda s: (
                "draftModel" not in _text_settings(s) or s.serving.runtime == "ModelServer"
            ),
        ),
        Rule(
            cel=f"!({_TEXT_CEL} && has({_TEXT}.chatTemplate)) || !has(self.serving) || "
            "!has(self.serving.runtime) || self.serving.runtime != 'ModelServer'",
            message="generation.textGeneration.chatTemplate is the kubevino runtime's: the stock "
            "Model Server reads a chat template only from chat_template.jinja in the model "
            "directory, so put the file there and remove chatTemplate, or leave "
            "serving.runtime at Auto or Kubevino",
            holds=lambda s: (
                "chatTemplate" not in _text_settings(s) or s.serving.runtime != "ModelServer"
            ),
        ),
    )


class InferenceModelSpec(ApiModel):
    """Desired state: a model served on an OpenVINO device."""

    cel_rules = (
        Rule(
            cel="!(has(self.performance) && has(self.performance.hint) && "
            "self.performance.hint == 'CUMULATIVE_THROUGHPUT' && "
            "!(has(self.device) && has(self.device.targetDevice) && "
            "(self.device.targetDevice.startsWith('AUTO') || "
            "self.device.targetDevice.startsWith('MULTI'))))",
            message="hint CUMULATIVE_THROUGHPUT needs an AUTO or MULTI targetDevice "
            "(e.g. AUTO:GPU,CPU)",
            holds=lambda s: (
                s.performance is None
                or s.performance.hint != "CUMULATIVE_THROUGHPUT"
                or s.device.target_device.startswith(("AUTO", "MULTI"))
            ),
        ),
        Rule(
            cel="!(has(self.serving) && has(self.serving.runtime) && "
            "self.serving.runtime == 'Kubevino' && has(self.device) && "
            f"has(self.device.targetDevice) && self.device.targetDevice.matches("
            f"'{_MODEL_SERVER_ONLY_PATTERN}'))",
            message="MYRIAD, HDDL and NVIDIA are not in current OpenVINO: set serving.runtime "
            "to ModelServer (or Auto) to use the stock Model Server 2022.3 image",
            holds=lambda s: (
                s.serving.runtime != "Kubevino"
                or not re.search(_MODEL_SERVER_ONLY_PATTERN, s.device.target_device)
            ),
        ),
        *_generation_rules(),
    )

    model: ModelSpec = Field(description="The model and where it comes from.")
    device: DeviceSpec = Field(
        default_factory=DeviceSpec,
        description="OpenVINO device and device access.",
        json_schema_extra={"default": {}},
    )
    performance: PerformanceSpec | None = Field(
        default=None, description="Performance hints and OpenVINO properties."
    )
    generation: GenerationSpec | None = Field(
        default=None,
        description="Settings of a generative model (spec.model.task TextGeneration, "
        "Embeddings or Rerank); performance's hint, streams, precision, pluginConfig and "
        "modelCache apply to its pipeline too.",
    )
    serving: ServingSpec = Field(
        default_factory=ServingSpec,
        description="Replicas, Service, scheduling, image and runtime.",
        # Defaulted by the API server too, so that the scale subresource always finds
        # .spec.serving.replicas.
        json_schema_extra={"default": {}},
    )


# --- status -----------------------------------------------------------------------------------


class Condition(ApiModel):
    """A standard Kubernetes condition."""

    type: str = Field(
        description="Ready, Progressing, Degraded, DeviceAccess, ModelLoaded, Reconciling, "
        "Stalled.",
        max_length=316,
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="CamelCase reason, stable for tools.",
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
    )
    message: str = Field(default="", description="Human-readable details.", max_length=32768)
    last_transition_time: datetime = Field(
        description="When status last changed.",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this condition was computed for."
    )


class Endpoints(ApiModel):
    """In-cluster URLs of the model."""

    rest: str | None = Field(default=None, description="Base URL of the REST API.")
    grpc: str | None = Field(default=None, description="host:port of the gRPC API.")
    openai: str | None = Field(
        default=None,
        description="Base URL of the OpenAI-compatible API of a generative model (its /v3 on "
        "the REST port): point OpenAI clients' base_url here.",
    )


class PipelineStatus(ApiModel):
    """The OpenVINO GenAI pipeline of a generative model, as it serves."""

    name: str = Field(
        description="GenAI's pipeline: ContinuousBatchingPipeline, LLMPipeline (NPU's static "
        "pipeline, or pipeline type LM), TextEmbeddingPipeline or TextRerankPipeline.",
        max_length=128,
    )
    device: str = Field(
        description="The target the pipeline was compiled for (GenAI does not report which "
        "devices AUTO picked behind it).",
        max_length=256,
    )
    context_length: int | None = Field(
        default=None,
        ge=0,
        description="Tokens the model attends to, from its files (GGUF metadata or "
        "config.json): prompt and answer together stay within it. Reported by kubevino-serve "
        "pods; absent on the ModelServer runtime, which does not publish it.",
    )
    reported_by: Literal["Pod", "Render"] = Field(
        description="Pod: read from a serving pod (kubevino-serve's /kubevino/diagnostics). "
        "Render: what the rendered command line makes the runtime build (the ModelServer "
        "runtime, or before a pod has answered)."
    )


class AllocatedDevice(ApiModel):
    """A device Dynamic Resource Allocation gave one of the model's pods, from its
    ResourceClaim's status.allocation.devices.results."""

    pod: str = Field(description="The pod whose claim it is.", max_length=253)
    node: str | None = Field(default=None, description="The node the pod runs on.", max_length=253)
    claim: str = Field(description="The ResourceClaim.", max_length=253)
    request: str = Field(description="The claim's request it answers.", max_length=253)
    driver: str = Field(description="The DRA driver that publishes it.", max_length=253)
    pool: str = Field(description="The driver's pool (usually the node).", max_length=253)
    device: str = Field(description="The device's name in its ResourceSlice.", max_length=253)


class InferenceModelStatus(ApiModel):
    """Observed state, written by the operator."""

    model_config = ConfigDict(extra="ignore")

    observed_generation: int | None = Field(
        default=None, description="metadata.generation the status describes."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready (it serves), Progressing, Degraded, DeviceAccess (the pods can use "
        "their devices), ModelLoaded (the model reached the server: source, versions, fetch "
        "time, or why not), and kstatus's Reconciling and Stalled.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int | None = Field(default=None, description="Pods of the Deployment.")
    applied_replicas: int | None = Field(
        default=None,
        description="spec.serving.replicas as last pushed to the Deployment; a Deployment "
        "scaled by someone else keeps its count until spec.serving.replicas changes.",
    )
    ready_replicas: int | None = Field(default=None, description="Pods that serve.")
    selector: str | None = Field(
        default=None, description="Label selector of the pods (for the scale subresource)."
    )
    endpoints: Endpoints | None = Field(default=None, description="Where clients connect.")
    accelerators: list[str] | None = Field(
        default=None, description="Accelerator profiles resolved from the target."
    )
    access_mode: str | None = Field(default=None, description="Device access mode in use.")
    runtime: str | None = Field(
        default=None, description="Runtime in use (Kubevino or ModelServer)."
    )
    task: str | None = Field(
        default=None,
        description="What the served model does (spec.model.task as rendered): Tensor, "
        "TextGeneration, Embeddings or Rerank.",
    )
    pipeline: PipelineStatus | None = Field(
        default=None,
        description="A generative model's GenAI pipeline: which one, the device it was "
        "compiled for, and the model's context length.",
    )
    pod_security_level: str | None = Field(
        default=None,
        description="Pod Security Standard level the pods need (restricted/baseline/privileged).",
    )
    devices: list[AllocatedDevice] | None = Field(
        default=None,
        description="ResourceClaim mode: the devices each pod's claims were allocated "
        "(driver, pool, device), as the scheduler wrote them into the claims.",
    )


class ObjectMeta(BaseModel):
    """The parts of metadata kubevino reads; everything else is kept as given."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH)
    namespace: str = Field(default="default", pattern=_NAMESPACE_PATTERN, max_length=63)
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    generation: int | None = None
    uid: str | None = None


class InferenceModel(BaseModel):
    """A whole object as read from a file or the API server."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: Literal["kubevino.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["InferenceModel"]
    metadata: ObjectMeta
    spec: InferenceModelSpec
    status: InferenceModelStatus | None = None

    @property
    def served_name(self) -> str:
        return self.spec.model.name or self.metadata.name
