"""Prometheus metrics named like OpenVINO Model Server's, so its dashboards work unchanged.

As in Model Server, /metrics serves only when enabled, and then the default families unless a
list names others. The counters run either way: enabling them is a matter of exposing them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from kubevino_runtime.workers import METRICS_DIR_ENV

# With --workers, a gauge is the sum over the workers that are still running.
_SUM_OF_LIVE_WORKERS: Final = "livesum"

# Model Server's families enabled by default, and those only a list enables.
MODEL_SERVER_DEFAULT_FAMILIES: Final = frozenset(
    {
        "ovms_current_requests",
        "ovms_requests_success",
        "ovms_requests_fail",
        "ovms_request_time_us",
        "ovms_streams",
        "ovms_inference_time_us",
        "ovms_wait_for_infer_req_time_us",
        # MediaPipe graphs' families: kubevino-serve runs no graphs, so like Model Server
        # without graphs it has no series for them.
        "ovms_current_graphs",
        "ovms_requests_accepted",
        "ovms_requests_rejected",
        "ovms_graph_error",
        "ovms_graph_processing_time_us",
        "ovms_responses",
    }
)
MODEL_SERVER_OPTIONAL_FAMILIES: Final = frozenset(
    {"ovms_infer_req_queue_size", "ovms_infer_req_active"}
)
# Model Server has no families of its own for generation (its graphs' ones count requests,
# not tokens): these are kubevino-serve's, named after what they count.
GENERATIVE_FAMILIES: Final = frozenset(
    {
        "kubevino_generation_requests_running",
        "kubevino_generation_requests_waiting",
        "kubevino_prompt_tokens",
        "kubevino_generated_tokens",
        "kubevino_generation_steps",
        "kubevino_time_to_first_token_seconds",
        "kubevino_time_per_output_token_seconds",
        "kubevino_kv_cache_usage_ratio",
    }
)
KUBEVINO_FAMILIES: Final = (
    frozenset({"kubevino_request_queue_depth", "kubevino_device_access", "kubevino_batch_requests"})
    | GENERATIVE_FAMILIES
)
DEFAULT_FAMILIES: Final = MODEL_SERVER_DEFAULT_FAMILIES | KUBEVINO_FAMILIES
KNOWN_FAMILIES: Final = DEFAULT_FAMILIES | MODEL_SERVER_OPTIONAL_FAMILIES


class UnknownFamilyError(ValueError):
    """A metrics list names a family neither Model Server nor kubevino-serve has."""


def families_from_list(names: list[str] | tuple[str, ...] | None) -> frozenset[str]:
    """The families a metrics list enables; None: the default set."""
    if names is None:
        return DEFAULT_FAMILIES
    unknown = sorted(set(names) - KNOWN_FAMILIES)
    if unknown:
        raise UnknownFamilyError(
            f"{', '.join(unknown)} is not a metric family; the families are "
            + ", ".join(sorted(KNOWN_FAMILIES))
        )
    return frozenset(names)


# Microsecond buckets from 0.1 ms to 100 s, as latency spreads over many orders of magnitude.
_US_BUCKETS = (
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    100_000_000,
)
# Requests per inference with dynamic batching: powers of two up to --max_dynamic_batch's usual
# range, so the histogram shows how full the batches are.
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
# Seconds from 1 ms to a minute: a token takes milliseconds, a first token up to a long prompt.
_TOKEN_SECONDS_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    60,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["api", "interface", "method", "name", "version"]
        self.requests_success = Counter(
            "ovms_requests_success",
            "Number of successful requests to a model.",
            labels,
            registry=self.registry,
        )
        self.requests_fail = Counter(
            "ovms_requests_fail",
            "Number of failed requests to a model.",
            labels,
            registry=self.registry,
        )
        self.request_time_us = Histogram(
            "ovms_request_time_us",
            "Processing time of requests to a model.",
            ["interface", "name", "version"],
            buckets=_US_BUCKETS,
            registry=self.registry,
        )
        self.inference_time_us = Histogram(
            "ovms_inference_time_us",
            "Inference execution time in the OpenVINO backend.",
            ["name", "version"],
            buckets=_US_BUCKETS,
            registry=self.registry,
        )
        self.wait_for_infer_req_time_us = Histogram(
            "ovms_wait_for_infer_req_time_us",
            "Request waiting time in the scheduling queue.",
            ["name", "version"],
            buckets=_US_BUCKETS,
            registry=self.registry,
        )
        self.current_requests = Gauge(
            "ovms_current_requests",
            "Requests being processed by the model server.",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode=_SUM_OF_LIVE_WORKERS,
        )
        self.streams = Gauge(
            "ovms_streams",
            "Number of OpenVINO execution streams.",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode=_SUM_OF_LIVE_WORKERS,
        )
        self.infer_req_queue_size = Gauge(
            "ovms_infer_req_queue_size",
            "Inference request pool size (nireq).",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode=_SUM_OF_LIVE_WORKERS,
        )
        self.infer_req_active = Gauge(
            "ovms_infer_req_active",
            "Infer requests bound to user requests right now.",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode=_SUM_OF_LIVE_WORKERS,
        )
        self.queue_depth = Gauge(
            "kubevino_request_queue_depth",
            "Requests waiting for an idle infer request (bounded; beyond it: 503/UNAVAILABLE).",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode=_SUM_OF_LIVE_WORKERS,
        )
        self.batch_requests = Histogram(
            "kubevino_batch_requests",
            "Requests each inference ran (1 unless dynamic batching joined several).",
            ["name", "version"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.device_access = Gauge(
            "kubevino_device_access",
            "1 for each device node the pod was given, labelled with what opening it said "
            "(Usable, DeviceMissing, GroupMissing, CgroupDenied, DriverMissing).",
            ["family", "path", "access"],
            registry=self.registry,
            multiprocess_mode="max",
        )

        self.generation_running = Gauge(
            "kubevino_generation_requests_running",
            "Generation requests the pipeline runs in its current step.",
            ["name"],
            registry=self.registry,
            multiprocess_mode=_SUM_OF_LIVE_WORKERS,
        )
        self.generation_waiting = Gauge(
            "kubevino_generation_requests_waiting",
            "Generation requests waiting for room in the pipeline's batch or KV cache.",
            ["name"],
            registry=self.registry,
            multiprocess_mode=_SUM_OF_LIVE_WORKERS,
        )
        self.prompt_tokens = Counter(
            "kubevino_prompt_tokens",
            "Prompt tokens of the generation requests.",
            ["name"],
            registry=self.registry,
        )
        self.generated_tokens = Counter(
            "kubevino_generated_tokens",
            "Tokens generated.",
            ["name"],
            registry=self.registry,
        )
        self.generation_steps = Counter(
            "kubevino_generation_steps",
            "Decoding steps the pipeline took; each advances every request in its batch by one "
            "token (generated tokens per step shows the batching).",
            ["name"],
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "kubevino_time_to_first_token_seconds",
            "From a generation request's arrival to its first generated token.",
            ["name"],
            buckets=_TOKEN_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.time_per_output_token = Histogram(
            "kubevino_time_per_output_token_seconds",
            "Mean time between a request's generated tokens after the first.",
            ["name"],
            buckets=_TOKEN_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.kv_cache_usage = Gauge(
            "kubevino_kv_cache_usage_ratio",
            "Fraction of the KV cache in use after the pipeline's last step.",
            ["name"],
            registry=self.registry,
            multiprocess_mode="max",
        )

    def exposition(self, families: frozenset[str]) -> bytes:
        """Prometheus text format with Model Server's exact names, of the given families only;
        with --workers, the sum of every worker's (their values live in the directory the
        supervisor shares)."""
        registry = self.registry
        if os.environ.get(METRICS_DIR_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        named = _ModelServerNames(registry, families)
        text = generate_latest(named)
        # prometheus_client heads a counter's HELP and TYPE lines with ``<name>_total`` whatever
        # its samples are called: name them like the samples, as Model Server does.
        for counter in named.counters:
            for kind in (b"HELP", b"TYPE"):
                text = text.replace(
                    b"# %s %s_total " % (kind, counter), b"# %s %s " % (kind, counter)
                )
        return text


class _ModelServerNames:
    """Model Server writes ``ovms_requests_success``, not ``..._total``, and no ``_created``
    series; dashboards query those names, so expose them the same way."""

    def __init__(self, registry: CollectorRegistry, families: frozenset[str]) -> None:
        self.registry = registry
        self.families = families
        self.counters: list[bytes] = []  # counter families collected, by name

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if family.name not in self.families:
                continue
            if family.type == "counter":
                self.counters.append(family.name.encode())
            renamed = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                if family.type == "counter" and sample.name.endswith("_total"):
                    sample = sample._replace(name=family.name)
                renamed.samples.append(sample)
            yield renamed
