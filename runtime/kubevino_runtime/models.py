"""The set of served model versions: loads, hot-reloads and retires them.

A refresh compares what the repository and config hold with what is loaded: new versions are
compiled in a worker thread, a version whose config changed is recompiled and swapped in, and a
version that is no longer wanted stops taking requests at once but is released only after its
in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import openvino as ov
from prometheus_client import Histogram

from kubevino_runtime.batching import NO_BATCHING, BatchingSettings
from kubevino_runtime.engine import LoadedVersion, compile_version
from kubevino_runtime.metrics import Metrics
from kubevino_runtime.preprocessing import describe
from kubevino_runtime.repository import ModelConfig, discover_versions, select_versions
from kubevino_runtime.versions import ServedModel, VersionLookup, VersionStatus

log = logging.getLogger("kubevino.models")


class ModelRegistry(VersionLookup[LoadedVersion]):
    def __init__(
        self,
        core: ov.Core,
        metrics: Metrics,
        cache_dir: str | None,
        max_queue: int,
        batching: BatchingSettings = NO_BATCHING,
    ) -> None:
        super().__init__()
        self.core = core
        self.metrics = metrics
        self.cache_dir = cache_dir
        self.max_queue = max_queue
        self.batching = batching
        self._refresh_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._failed_files: dict[tuple[str, int], tuple[ModelConfig, float]] = {}
        # The device checks may narrow a target (AUTO without its unusable candidates).
        self.compile_target: Callable[[str], str] = lambda target: target
        # Told of each version retired, before its drain begins (front ends may hold it).
        self.on_retire: Callable[[LoadedVersion], None] = lambda version: None

    # --- lifecycle -------------------------------------------------------------------------

    def set_configs(self, configs: list[ModelConfig]) -> None:
        wanted = {config.name: config for config in configs}
        for name in list(self.models):
            if name not in wanted:
                served = self.models.pop(name)
                for number in list(served.loaded):
                    self._retire(served, number)
        for name, config in wanted.items():
            if name in self.models:
                self.models[name].config = config
            else:
                self.models[name] = ServedModel(config)

    async def refresh(self) -> None:
        async with self._refresh_lock:
            for served in list(self.models.values()):
                await self._refresh_model(served)
            self.refreshed_once = True

    async def _refresh_model(self, served: ServedModel[LoadedVersion]) -> None:
        config = served.config
        available = await asyncio.to_thread(discover_versions, Path(config.base_path))
        served.wanted = select_versions(set(available), config.version_policy)
        for number in sorted(set(served.loaded) - served.wanted):
            log.info("model %s version %d is no longer wanted: unloading", config.name, number)
            self._retire(served, number)
        for number in sorted(served.wanted):
            loaded = served.loaded.get(number)
            if loaded is not None and loaded.config == config:
                continue
            model_file = available[number]
            key = (config.name, number)
            stamp = _stamp(model_file if model_file.is_dir() else model_file.parent)
            if self._failed_files.get(key) == (config, stamp):
                continue  # same files, same config: do not retry a failed load in a loop
            served.status[number] = VersionStatus("LOADING")
            try:
                target = self.compile_target(config.target_device)
                compiled = await asyncio.to_thread(
                    compile_version,
                    self.core,
                    replace(config, target_device=target),
                    model_file,
                    self.cache_dir,
                )
            except Exception as error:
                message = describe(error)
                log.error("model %s version %d failed to load: %s", config.name, number, message)
                served.status[number] = VersionStatus("LOADING_FAILED", message)
                self._failed_files[key] = (config, stamp)
                continue
            self._failed_files.pop(key, None)
            if served.config != config or self.models.get(config.name) is not served:
                continue  # reconfigured while compiling: the next refresh loads the new config
            version = LoadedVersion(
                config,
                number,
                compiled.compiled,
                compiled.nireq,
                self.max_queue,
                observe_inference=self._observer(
                    self.metrics.inference_time_us, config.name, number
                ),
                observe_wait=self._observer(
                    self.metrics.wait_for_infer_req_time_us, config.name, number
                ),
                batching=self.batching,
                observe_batch=self.metrics.batch_requests.labels(config.name, str(number)).observe,
            )
            if loaded is not None:
                self._retire(served, number)
            served.loaded[number] = version
            served.status[number] = VersionStatus("AVAILABLE")
            log.info(
                "model %s version %d AVAILABLE on %s (target %s, %d infer requests, optimal %d; "
                "dynamic batching: %s)",
                config.name,
                number,
                ",".join(version.execution_devices) or "?",
                config.target_device,
                version.nireq,
                version.optimal_nireq,
                version.batching.reason,
            )

    @staticmethod
    def _observer(family: Histogram, name: str, version: int) -> Callable[[float], None]:
        histogram = family.labels(name, str(version))

        def observe(seconds: float) -> None:
            histogram.observe(seconds * 1e6)

        return observe

    def _retire(self, served: ServedModel[LoadedVersion], number: int) -> None:
        version = served.loaded.pop(number, None)
        if version is None:
            return
        served.status[number] = VersionStatus("UNLOADING")
        self.on_retire(version)

        async def release() -> None:
            await version.drained()
            version.close()
            if served.status.get(number, VersionStatus("")).state == "UNLOADING":
                served.status[number] = VersionStatus("END")
            log.info("model %s version %d released", version.name, number)

        task = asyncio.get_running_loop().create_task(release())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def drain(self) -> None:
        """Wait until no request is in flight anywhere (loaded or retiring)."""
        for served in list(self.models.values()):
            for version in list(served.loaded.values()):
                await version.drained()
            version.close()
        if self._retiring:
            await asyncio.gather(*self._retiring)


def _stamp(directory: Path) -> float:
    """Newest modification time under a version directory: changes when any file changes."""
    try:
        files = [directory, *directory.rglob("*")]
        return max(file.stat().st_mtime for file in files)
    except OSError:
        return 0.0
