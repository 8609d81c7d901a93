"""What every protocol does, once: find the version, validate, infer, count, time."""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy.typing as npt

from kubevino_runtime import __version__
from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.metrics import Metrics
from kubevino_runtime.served import ServedVersion
from kubevino_runtime.tensors import kserve_datatype
from kubevino_runtime.versions import VersionLookup
from kubevino_runtime.workers import WorkerGroup

SERVER_NAME = "kubevino"
EXTENSIONS = ("binary_tensor_data", "model_repository_ready")


class ServedOutsideRegistry(Protocol):
    """A model the registry does not hold (the generative model of --task)."""

    def ready(self) -> bool: ...

    def not_ready_reasons(self) -> list[str]: ...

    def refresh_gauges(self) -> None: ...


class DataPlane:
    def __init__(
        self,
        registry: VersionLookup[Any],
        metrics: Metrics,
        group: WorkerGroup | None = None,
        generative: ServedOutsideRegistry | None = None,
        *,
        engines_here: bool = True,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.group = group
        self.generative = generative
        # Whether this process runs the engines: only the engine's process reports their pools
        # (a front end reporting them too would count them once per front end).
        self.engines_here = engines_here

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """This server's models are loaded (and, with --workers, every worker's are: a probe
        reaches one worker, but clients reach them all)."""
        here = self.generative.ready() if self.generative else self.registry.ready()
        return here and (self.group is None or self.group.all_ready())

    def not_ready_reasons(self) -> list[str]:
        if self.generative is not None:
            return self.generative.not_ready_reasons()
        return self.registry.not_ready_reasons()

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    def version(self, name: str, version: str | int | None) -> ServedVersion:
        found: ServedVersion = self.registry.get(name, version)
        return found

    def model_ready(self, name: str, version: str | None) -> bool:
        """Whether the version serves; an unknown model or version, or a version that is no
        number, is the client's mistake and raised as such (never a plain "not ready")."""
        try:
            self.registry.get(name, version)
        except ServingError as error:
            if error.kind is not ErrorKind.UNAVAILABLE:
                raise
            return False
        return not self.registry.shutting_down

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        loaded = self.registry.get(name, version)
        served = self.registry.model(name)
        return {
            "name": name,
            "versions": [str(number) for number in sorted(served.loaded)],
            "platform": "OpenVINO",
            "inputs": [
                {
                    "name": t.name,
                    "datatype": kserve_datatype(t.element_type),
                    "shape": list(t.shape),
                }
                for t in loaded.inputs
            ],
            "outputs": [
                {
                    "name": t.name,
                    "datatype": kserve_datatype(t.element_type),
                    "shape": list(t.shape),
                }
                for t in loaded.outputs
            ],
            # Not in the KServe schema; clients ignore it. What AUTO/MULTI actually chose.
            "execution_devices": list(loaded.execution_devices),
            "target_device": loaded.target_device,
        }

    async def infer(
        self,
        loaded: ServedVersion,
        inputs: dict[str, npt.NDArray[Any]],
        api: str,
        interface: str,
        method: str,
    ) -> dict[str, npt.NDArray[Any]]:
        """Validate and run one request, with Model Server's request metrics."""
        labels = (api, interface, method, loaded.name, str(loaded.version))
        started = time.perf_counter()
        current = self.metrics.current_requests.labels(loaded.name, str(loaded.version))
        current.inc()
        try:
            loaded.validate(inputs)
            outputs = await loaded.infer(inputs)
        except BaseException:
            self.metrics.requests_fail.labels(*labels).inc()
            raise
        finally:
            current.dec()
        self.metrics.requests_success.labels(*labels).inc()
        self.metrics.request_time_us.labels(interface, loaded.name, str(loaded.version)).observe(
            (time.perf_counter() - started) * 1e6
        )
        return outputs

    def count_failure(self, api: str, interface: str, method: str, name: str, version: str) -> None:
        self.metrics.requests_fail.labels(api, interface, method, name, version).inc()

    def refresh_gauges(self) -> None:
        if self.generative is not None:
            self.generative.refresh_gauges()
        if not self.engines_here:
            return
        for loaded in self.registry.loaded_versions():
            labels = (loaded.name, str(loaded.version))
            self.metrics.streams.labels(*labels).set(loaded.streams)
            self.metrics.infer_req_queue_size.labels(*labels).set(loaded.nireq)
            self.metrics.infer_req_active.labels(*labels).set(loaded.active)
            self.metrics.queue_depth.labels(*labels).set(loaded.queue_depth)
