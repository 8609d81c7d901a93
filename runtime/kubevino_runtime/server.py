"""``kubevino-serve``: Model Server's command line, KServe v2 (REST + gRPC), TF-Serving REST,
Prometheus metrics, health, hot reload and graceful shutdown."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import openvino as ov
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from kubevino_runtime import __version__
from kubevino_runtime.cpulimits import CpuAllowance, read_cpu_allowance
from kubevino_runtime.dataplane import DataPlane
from kubevino_runtime.deviceaccess import (
    DeviceReport,
    report_from_environment,
    termination_message,
)
from kubevino_runtime.engine import UnsupportedDeviceError, check_target_supported, default_target
from kubevino_runtime.enginehost import EngineHost
from kubevino_runtime.forked import Launcher
from kubevino_runtime.generative.answers import GenAiAnswers
from kubevino_runtime.generative.openai_http import OpenAiRoutes, openai_errors
from kubevino_runtime.generative.service import GenerativeService
from kubevino_runtime.generative.settings import (
    GenerativeSettings,
    check_for_device,
    locate_model,
    settings_from_args,
)
from kubevino_runtime.listeners import application, listen, stop_on_signals
from kubevino_runtime.metrics import (
    DEFAULT_FAMILIES,
    Metrics,
    UnknownFamilyError,
    families_from_list,
)
from kubevino_runtime.models import ModelRegistry
from kubevino_runtime.parity import UsageError
from kubevino_runtime.preprocessing import (
    PreprocessingError,
    describe,
    parse_mean_or_scale,
    parse_precision,
)
from kubevino_runtime.repository import (
    ConfigError,
    MetricsSetting,
    ModelConfig,
    ServingConfig,
    config_file_path,
    model_config_from_entry,
    parse_json_object,
    parse_shape,
    read_config_file,
)
from kubevino_runtime.startup import (
    HeapTrimmer,
    batching_settings,
    cache_dir,
    cannot_start,
    configure_logging,
    heap_trim_minutes,
    metrics_families_from_flag,
    parse_arguments,
    release_free_heap,
)
from kubevino_runtime.termination import write_termination_message
from kubevino_runtime.workers import (
    FrontEnds,
    WorkerGroup,
    exit_status,
    share_metrics,
)

log = logging.getLogger("kubevino.server")
GROUP_REPORT_SECONDS = 0.5
Families = frozenset[str] | None  # the metric families /metrics serves; None: /metrics is off


def read_configs(args: argparse.Namespace, core: ov.Core) -> ServingConfig:
    """The models to serve (targets resolved) and config.json's monitoring section.

    Refused fields and values raise UsageError, malformed ones ConfigError."""
    if args.task:  # the generative model is served outside the registry
        return ServingConfig([])
    if args.config_path:
        serving = read_config_file(Path(args.config_path))
    else:
        serving = ServingConfig([_model_from_flags(args)])
    recommended = None
    models = []
    for config in serving.models:
        if not config.target_device:
            recommended = recommended or default_target(core)
            config = replace(config, target_device=recommended)
        models.append(config)
    return replace(serving, models=models)


def _model_from_flags(args: argparse.Namespace) -> ModelConfig:
    flag_of = {"name": "--model_name", "base_path": "--model_path"}
    entry = {
        "config": {
            key: value
            for key, value in {
                "name": args.model_name,
                "base_path": args.model_path,
                "target_device": args.target_device,
                "plugin_config": parse_json_object(args.plugin_config, "--plugin_config"),
                "nireq": args.nireq,
                "batch_size": args.batch_size,
                "shape": parse_shape(args.shape),
                "layout": args.layout,
                "model_version_policy": parse_json_object(
                    args.model_version_policy, "--model_version_policy"
                ),
            }.items()
            if value is not None
        }
    }
    config = model_config_from_entry(entry, 0, subject=lambda key: flag_of.get(key, f"--{key}"))
    try:
        # Model Server reads these from its command line only (its config.json refuses them).
        only_input = replace(
            config.preprocessing,
            mean=parse_mean_or_scale(args.mean, "--mean") if args.mean else None,
            scale=parse_mean_or_scale(args.scale, "--scale") if args.scale else None,
            precision=parse_precision(args.precision) if args.precision else None,
        )
    except PreprocessingError as error:
        raise ConfigError(f"model {config.name}: {error}") from None
    return replace(config, preprocessing=only_input)


def metrics_families(args: argparse.Namespace, monitoring: MetricsSetting | None) -> Families:
    """The families /metrics serves (None: /metrics is off), from the flags or config.json's
    monitoring section, which Model Server does not let both set."""
    if args.metrics_enable:
        if monitoring is not None:
            raise ConfigError(
                "metrics are set by --metrics_enable and by config.json's monitoring section: "
                "keep one, as Model Server requires"
            )
        if args.metrics_list is None:
            return DEFAULT_FAMILIES
        return metrics_families_from_flag(args.metrics_list)
    if monitoring is None or not monitoring.enabled:
        return None
    if args.rest_port == 0:
        raise ConfigError("config.json enables metrics, which need --rest_port")
    try:
        return families_from_list(monitoring.families)
    except UnknownFamilyError as error:
        raise ConfigError(f"monitoring.metrics.metrics_list: {error}") from None


@dataclass
class Server:
    args: argparse.Namespace
    registry: ModelRegistry
    plane: DataPlane
    devices: DeviceReport
    core: ov.Core
    families: Families  # what /metrics serves; None: /metrics is off
    config_mtime: float | None = None
    generative: GenerativeService | None = None  # the model of --task
    cpu: CpuAllowance | None = None  # None: not read (in-process tests)

    async def metrics(self, request: web.Request) -> web.Response:
        if self.families is None:
            raise web.HTTPNotFound()  # as Model Server without metrics enabled
        self.plane.refresh_gauges()
        return web.Response(
            body=self.plane.metrics.exposition(self.families),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def diagnostics(self, request: web.Request) -> web.Response:
        return web.json_response(self.report([os.getpid()]))

    def report(self, front_end_pids: list[int]) -> dict[str, Any]:
        """What the device checks found, the CPUs the process may use, what each loaded
        version runs on (and in which process), the processes serving, and the generative
        pipeline of --task (the operator reads that section into the InferenceModel's
        status)."""
        models = [
            {
                "name": loaded.name,
                "version": loaded.version,
                "targetDevice": loaded.target_device,
                "executionDevices": list(loaded.execution_devices),
                "streams": loaded.streams,
                "inferRequests": loaded.nireq,
                "optimalInferRequests": loaded.optimal_nireq,
                "dynamicBatching": loaded.batching.as_json(),
                "enginePid": os.getpid(),
            }
            for loaded in self.registry.loaded_versions()
        ]
        found: dict[str, Any] = {
            "devices": self.devices.as_dict(),
            "cpu": None if self.cpu is None else self.cpu.as_dict(),
            "models": models,
            # One engine process holds every compiled model; the front ends speak protocols.
            "processes": {"engine": os.getpid(), "frontEnds": front_end_pids},
        }
        if self.generative is not None:
            found["generative"] = self.generative.pipeline_report()
        return found

    def _config_mtime(self) -> float | None:
        if not self.args.config_path:
            return None
        try:
            return config_file_path(Path(self.args.config_path)).stat().st_mtime
        except OSError:
            return None

    async def reload_config_if_changed(self) -> None:
        mtime = self._config_mtime()
        if mtime is None or mtime == self.config_mtime:
            return
        try:
            serving = read_configs(self.args, self.core)
            families = metrics_families(self.args, serving.metrics)
            for config in serving.models:
                check_target_supported(config.target_device)
                verdict = self.devices.judge(config.target_device)
                if not verdict.can_start:
                    raise UnsupportedDeviceError(verdict.explanation)
        except (ConfigError, UsageError, UnsupportedDeviceError) as error:
            log.error(
                "config %s not applied, keeping the running one: %s", self.args.config_path, error
            )
        else:
            log.info("config %s changed: applying it", self.args.config_path)
            self.registry.set_configs(serving.models)
            self.families = families
        self.config_mtime = mtime

    async def poll(self) -> None:
        interval = self.args.file_system_poll_wait_seconds
        while interval > 0:
            await asyncio.sleep(interval)
            try:
                await self.reload_config_if_changed()
                await self.registry.refresh()
            except Exception:
                log.exception("repository scan failed")


def _registry(
    args: argparse.Namespace, configs: list[ModelConfig], core: ov.Core, devices: DeviceReport
) -> tuple[Metrics, ModelRegistry]:
    metrics = Metrics()
    for probe in devices.probes:
        metrics.device_access.labels(probe.family, probe.path, probe.access.value).set(1)
    registry = ModelRegistry(
        core,
        metrics,
        cache_dir(args),
        args.max_queue,
        batching_settings(args),
    )
    registry.compile_target = lambda target: devices.judge(target).compile_as or target
    registry.set_configs(configs)
    return metrics, registry


def _generative_service(
    generative: GenerativeSettings | None, registry: ModelRegistry, core: ov.Core, metrics: Metrics
) -> GenerativeService | None:
    """The --task pipeline, on the device the device checks let it compile for."""
    if generative is None:
        return None
    target = generative.target_device or default_target(core)
    return GenerativeService(generative, registry.compile_target(target), metrics)


def _log_start(args: argparse.Namespace, families: Families, core: ov.Core, role: str) -> None:
    log.info(
        "kubevino-serve %s%s: gRPC on %s, REST on %s, metrics %s; OpenVINO %s sees %s",
        __version__,
        role,
        args.port or "off",
        args.rest_port or "off",
        "on" if families is not None else "off",
        ov.get_version(),
        ", ".join(core.available_devices),
    )


async def serve(
    args: argparse.Namespace,
    configs: list[ModelConfig],
    core: ov.Core,
    devices: DeviceReport,
    group: WorkerGroup | None = None,
    *,
    families: Families = None,
    heap_trim: tuple[HeapTrimmer | None, int] = (None, 0),
    generative: GenerativeSettings | None = None,
    cpu: CpuAllowance | None = None,
) -> int:
    """One process that both speaks the protocols and runs the engines (one front end)."""
    metrics, registry = _registry(args, configs, core, devices)
    service = _generative_service(generative, registry, core, metrics)
    plane = DataPlane(registry, metrics, group, service)
    server = Server(args, registry, plane, devices, core, families, generative=service, cpu=cpu)
    server.config_mtime = server._config_mtime()
    openai = (
        ([], [])
        if service is None
        else (
            OpenAiRoutes(service, GenAiAnswers(service), args.max_request_bytes).routes(),
            [openai_errors],
        )
    )
    app = application(args, plane, server.metrics, server.diagnostics, *openai)
    runner, grpc_server = await listen(args, plane, app, reuse_port=group is not None)
    _log_start(args, families, registry.core, "")

    stop, _ = stop_on_signals()
    loop = asyncio.get_running_loop()
    await registry.refresh()
    loading = loop.create_task(service.load()) if service is not None else None
    if service is None and not registry.ready():
        for reason in registry.not_ready_reasons():
            log.warning("not ready: %s", reason)
    poller = loop.create_task(server.poll())
    reporter = loop.create_task(_report_to_group(group, plane)) if group is not None else None
    trimmer, minutes = heap_trim
    heap = loop.create_task(release_free_heap(minutes, trimmer)) if trimmer and minutes else None
    gave_up: list[str] = []
    watchdog = (
        loop.create_task(
            _give_up_after(args.model_wait_seconds, service or registry, stop, gave_up)
        )
        if args.model_wait_seconds is not None
        else None
    )
    await stop.wait()
    if watchdog is not None:
        watchdog.cancel()

    log.info("shutting down: no new requests, finishing in-flight ones")
    registry.shutting_down = True
    if service is not None:
        service.shutting_down = True
    poller.cancel()
    for task in (reporter, heap):
        if task is not None:
            task.cancel()
    grace = args.shutdown_grace_seconds
    await asyncio.gather(grpc_server.stop(grace), runner.cleanup())
    try:
        await asyncio.wait_for(registry.drain(), timeout=grace)
        if service is not None:
            await asyncio.wait_for(service.drained(), timeout=grace)
    except TimeoutError:
        log.warning("requests still running after %.0f s; exiting anyway", grace)
    if service is not None:
        if loading is not None:
            await loading
        service.close()
    log.info("stopped")
    return 1 if gave_up else 0


async def serve_engines(
    args: argparse.Namespace,
    argv: Sequence[str],
    configs: list[ModelConfig],
    core: ov.Core,
    devices: DeviceReport,
    *,
    families: Families = None,
    heap_trim: tuple[HeapTrimmer | None, int] = (None, 0),
    cpu: CpuAllowance | None = None,
    generative: GenerativeSettings | None = None,
    launcher: Launcher | None = None,
) -> int:
    """The engine process of ``--workers N``: every model version compiled once here (or the
    one generative pipeline of ``--task``), N front-end processes speaking the protocols
    (docs/runtime-architecture.md)."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="kubevino-metrics-"))
    share_metrics(metrics_dir)
    try:
        return await _serve_engines(
            args,
            argv,
            configs,
            core,
            devices,
            metrics_dir,
            families,
            heap_trim,
            cpu,
            generative,
            launcher,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


async def _serve_engines(
    args: argparse.Namespace,
    argv: Sequence[str],
    configs: list[ModelConfig],
    core: ov.Core,
    devices: DeviceReport,
    metrics_dir: Path,
    families: Families,
    heap_trim: tuple[HeapTrimmer | None, int],
    cpu: CpuAllowance | None,
    generative: GenerativeSettings | None,
    launcher: Launcher | None,
) -> int:
    metrics, registry = _registry(args, configs, core, devices)
    service = _generative_service(generative, registry, core, metrics)
    plane = DataPlane(registry, metrics, generative=service)
    server = Server(args, registry, plane, devices, core, families, generative=service, cpu=cpu)
    server.config_mtime = server._config_mtime()
    front_ends = FrontEnds(argv, args.workers, args.shutdown_grace_seconds, metrics_dir, launcher)

    def describe() -> dict[str, Any]:
        families = server.families
        described = {
            "families": None if families is None else sorted(families),
            "diagnostics": server.report(front_ends.pids),
        }
        if service is not None:
            described["generative"] = service.facts().as_json()
        return described

    host = EngineHost(
        registry,
        args.workers,
        describe,
        models=service,
        answers=None if service is None else GenAiAnswers(service),
    )
    registry.on_retire = host.hold_for_front_ends
    stop, received = stop_on_signals()
    await front_ends.start(host.connect)
    _log_start(args, families, core, f" engine process ({args.workers} front ends)")

    loop = asyncio.get_running_loop()
    ended = loop.create_task(front_ends.first_to_end())
    stopped = loop.create_task(stop.wait())
    await registry.refresh()
    loading = loop.create_task(service.load()) if service is not None else None
    if service is None and not registry.ready():
        for reason in registry.not_ready_reasons():
            log.warning("not ready: %s", reason)

    async def publish() -> None:
        while True:
            host.publish()
            plane.refresh_gauges()
            await asyncio.sleep(GROUP_REPORT_SECONDS / 2)

    tasks = [loop.create_task(server.poll()), loop.create_task(publish())]
    trimmer, minutes = heap_trim
    if trimmer and minutes:
        tasks.append(loop.create_task(release_free_heap(minutes, trimmer)))
    gave_up: list[str] = []
    if args.model_wait_seconds is not None:
        watch = _give_up_after(args.model_wait_seconds, service or registry, stop, gave_up)
        tasks.append(loop.create_task(watch))
    await asyncio.wait([ended, stopped], return_when=asyncio.FIRST_COMPLETED)
    failure = None
    if ended.done() and not stop.is_set():
        process = ended.result()
        log.error(
            "front end %d ended with status %d while serving: stopping the others",
            process.pid,
            process.returncode,
        )
        failure = exit_status(process.returncode or 0)
    ended.cancel()
    stopped.cancel()
    for task in tasks:
        task.cancel()

    log.info("shutting down: no new requests, finishing in-flight ones in every front end")
    registry.shutting_down = True
    if service is not None:
        service.shutting_down = True
    host.stopping = True
    host.publish()
    stopped_with = await front_ends.stop(received[0] if received else signal.SIGTERM)
    failure = failure or stopped_with
    try:
        await asyncio.wait_for(registry.drain(), timeout=args.shutdown_grace_seconds)
        if service is not None:
            await asyncio.wait_for(service.drained(), timeout=args.shutdown_grace_seconds)
    except TimeoutError:
        log.warning(
            "requests still running after %.0f s; exiting anyway", args.shutdown_grace_seconds
        )
    host.close()
    if service is not None:
        if loading is not None:
            await loading
        service.close()
    log.info("stopped")
    return failure or (1 if gave_up else 0)


async def _report_to_group(group: WorkerGroup, plane: DataPlane) -> None:
    """Tell the other workers whether this one serves, and keep this worker's gauges current
    in the shared metrics (a scrape refreshes only the worker it lands on)."""
    try:
        while True:
            group.report_ready(plane.registry.ready())
            plane.refresh_gauges()
            await asyncio.sleep(GROUP_REPORT_SECONDS)
    finally:  # cancelled at shutdown: no longer ready
        group.report_ready(False)


class _Models(Protocol):
    def ready(self) -> bool: ...

    def stuck_reasons(self) -> list[str]: ...


async def _give_up_after(
    seconds: float, models: _Models, stop: asyncio.Event, gave_up: list[str]
) -> None:
    """In a pod, a model that will not appear is better reported than waited for: the
    termination message reaches the pod status, where the operator reads it. ``models``: the
    tensor models' registry, or the one generative model."""
    await asyncio.sleep(seconds)
    stuck = models.stuck_reasons()
    if models.ready() or not stuck:
        return
    message = f"kubevino-serve gave up after {seconds:.0f} s: " + "; ".join(stuck)
    log.error("%s", message)
    write_termination_message(message)
    gave_up.append(message)
    stop.set()


def main(argv: Sequence[str] | None = None, launcher: Launcher | None = None) -> int:
    """``launcher``: the front ends' launcher, forked before OpenVINO was imported (``entry``,
    the console script's entry point); started here where needed if not given."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv), launcher)
    finally:
        if launcher is not None:
            launcher.close()  # unused: the server stopped before its front ends started


def _main(argv: list[str], launcher: Launcher | None) -> int:
    group = WorkerGroup.from_environment()
    try:
        args = parse_arguments(argv)
        configure_logging(args, f" [worker {group.index}]" if group is not None else "")
        core = ov.Core()
        cpu = read_cpu_allowance()
        log.info("%s", cpu.describe())
        if cpu.limited:
            # A Core default: a model's own plugin config (threads or streams) still wins.
            core.set_property("CPU", {"INFERENCE_NUM_THREADS": cpu.cpus})
        serving = read_configs(args, core)
        families = metrics_families(args, serving.metrics)
        generative = locate_model(settings_from_args(args, cache_dir(args))) if args.task else None
        trimmer = HeapTrimmer.from_libc()
        heap_trim = (trimmer, heap_trim_minutes(args, trimmer))
    except UsageError as error:
        return cannot_start(str(error), write_termination_message)
    except ConfigError as error:
        return _failed_to_start(str(error))
    if args.cpu_extension:
        try:
            core.add_extension(args.cpu_extension)
        except RuntimeError as error:
            return _failed_to_start(
                f"--cpu_extension {args.cpu_extension}: OpenVINO cannot load it: {describe(error)}"
            )
    configs = serving.models
    targets = [config.target_device for config in configs]
    if generative is not None:
        target = generative.target_device or default_target(core)
        generative = replace(
            generative, target_device=target, cpu_thread_cap=cpu.cpus if cpu.limited else None
        )
        try:
            check_for_device(generative, target)
        except UsageError as error:
            return cannot_start(str(error), write_termination_message)
        targets.append(target)
    try:
        for target in targets:
            check_target_supported(target)
    except UnsupportedDeviceError as error:
        return _failed_to_start(str(error))
    try:
        devices = report_from_environment(core.available_devices, targets)
    except ValueError as error:
        return _failed_to_start(str(error))
    if not _devices_allow_start(devices, targets):
        return 1
    if args.workers > 1 and group is None:
        return asyncio.run(
            serve_engines(
                args,
                argv,
                configs,
                core,
                devices,
                families=families,
                heap_trim=heap_trim,
                cpu=cpu,
                generative=generative,
                launcher=launcher,
            )
        )
    return asyncio.run(
        serve(
            args,
            configs,
            core,
            devices,
            group,
            families=families,
            heap_trim=heap_trim,
            generative=generative,
            cpu=cpu,
        )
    )


def _failed_to_start(reason: str) -> int:
    """What Model Server ends with status 1 for: a config it cannot load, a device it cannot
    drive (reported, like every start-up error, in the termination message)."""
    message = f"kubevino-serve cannot start: {reason}"
    log.error("%s", message)
    write_termination_message(message)
    return 1


def _devices_allow_start(devices: DeviceReport, targets: list[str]) -> bool:
    """One log line per target; a target that cannot run as asked stops the server, its
    paragraph in the termination message (never a silent run on another device)."""
    nodes = "; ".join(f"{p.path} {p.access.value}" for p in devices.probes) or (
        "none given" if devices.nodes_given else "none needed"
    )
    found = "" if devices.nodes_given else " (standard paths)"
    log.info(
        "devices: uid %d, groups %s; OpenVINO sees %s; device nodes%s: %s",
        devices.identity.uid,
        devices.identity.groups_text(),
        ", ".join(devices.openvino_devices) or "nothing",
        found,
        nodes,
    )
    for target in dict.fromkeys(targets):
        verdict = devices.judge(target)
        if not verdict.can_start:
            message = termination_message(verdict)
            log.error("%s", message)
            write_termination_message(message)
            return False
        if verdict.explanation:
            log.warning("%s", verdict.explanation)
        else:
            log.info("target_device %s can use %s", target, ", ".join(verdict.usable))
    return True


if __name__ == "__main__":
    sys.exit(main())
