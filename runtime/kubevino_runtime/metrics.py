"""Prometheus metrics named like OpenVINO Model Server's, so its dashboards work unchanged."""

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
        self.device_access = Gauge(
            "kubevino_device_access",
            "1 for each device node the pod was given, labelled with what opening it said "
            "(Usable, DeviceMissing, GroupMissing, CgroupDenied, DriverMissing).",
            ["family", "path", "access"],
            registry=self.registry,
            multiprocess_mode="max",
        )

    def exposition(self) -> bytes:
        """Prometheus text format with Model Server's exact names; with --workers, the sum of
        every worker's (their values live in the directory the supervisor shares)."""
        if os.environ.get(METRICS_DIR_ENV):
            shared = CollectorRegistry()
            MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
            return generate_latest(_ModelServerNames(shared))
        return generate_latest(_ModelServerNames(self.registry))


class _ModelServerNames:
    """Model Server writes ``ovms_requests_success``, not ``..._total``, and no ``_created``
    series; dashboards query those names, so expose them the same way."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            renamed = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                if family.type == "counter" and sample.name.endswith("_total"):
                    sample = sample._replace(name=family.name)
                renamed.samples.append(sample)
            yield renamed
