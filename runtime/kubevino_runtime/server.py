"""``kubevino-serve``: Model Server's command line, KServe v2 (REST + gRPC), TF-Serving REST,
Prometheus metrics, health, hot reload and graceful shutdown."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import openvino as ov
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from kubevino_runtime import __version__
from kubevino_runtime.dataplane import DataPlane
from kubevino_runtime.deviceaccess import (
    DeviceReport,
    report_from_environment,
    termination_message,
)
from kubevino_runtime.engine import UnsupportedDeviceError, check_target_supported
from kubevino_runtime.metrics import Metrics
from kubevino_runtime.models import ModelRegistry
from kubevino_runtime.protocols import kserve_grpc
from kubevino_runtime.protocols.http_common import json_errors
from kubevino_runtime.protocols.kserve_rest import KServeRest
from kubevino_runtime.protocols.tfs_rest import TfServingRest
from kubevino_runtime.repository import (
    ConfigError,
    ModelConfig,
    model_config_from_entry,
    parse_json_object,
    parse_shape,
    read_config_file,
)
from kubevino_runtime.termination import write_termination_message
from kubevino_runtime.workers import WorkerGroup, supervise

log = logging.getLogger("kubevino.server")
DIAGNOSTICS_PATH = "/kubevino/diagnostics"
GROUP_REPORT_SECONDS = 0.5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubevino-serve",
        description="Serve OpenVINO models over KServe v2 (REST and gRPC) and TF-Serving REST; "
        "flags follow OpenVINO Model Server's.",
    )
    parser.add_argument("--version", action="version", version=f"kubevino-serve {__version__}")
    one = parser.add_argument_group("one model (instead of --config_path)")
    one.add_argument("--model_name", help="name clients use")
    one.add_argument("--model_path", help="directory holding <version>/ folders")
    one.add_argument("--target_device", default="CPU", help="OpenVINO target (default CPU)")
    one.add_argument(
        "--plugin_config",
        help='OpenVINO properties as JSON, e.g. \'{"PERFORMANCE_HINT": "LATENCY"}\'',
    )
    one.add_argument("--nireq", type=int, help="infer requests (default: the optimal number)")
    one.add_argument("--batch_size", help="batch size, or auto")
    one.add_argument("--shape", help="auto, (1,3,224,224), or a JSON map of input to shape")
    one.add_argument(
        "--model_version_policy", help='JSON, e.g. \'{"latest": {"num_versions": 2}}\''
    )
    parser.add_argument("--config_path", help="Model Server config.json with model_config_list")
    parser.add_argument("--port", type=int, default=9000, help="gRPC port (0: off)")
    parser.add_argument("--rest_port", type=int, default=8000, help="REST port (0: off)")
    parser.add_argument("--grpc_bind_address", default="0.0.0.0")
    parser.add_argument("--rest_bind_address", default="0.0.0.0")
    parser.add_argument("--cache_dir", help="OpenVINO compiled-model cache directory")
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="how often to look for new versions and config changes (0: never)",
    )
    parser.add_argument(
        "--max_queue",
        type=int,
        default=64,
        help="requests that may wait per model version before 503/UNAVAILABLE",
    )
    parser.add_argument(
        "--max_request_bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="largest request body or message accepted",
    )
    parser.add_argument(
        "--shutdown_grace_seconds",
        type=float,
        default=25.0,
        help="how long SIGTERM waits for in-flight requests",
    )
    parser.add_argument(
        "--model_wait_seconds",
        type=float,
        help="exit (code 1, reason in the termination message) when a model is still missing "
        "or failed this long after start; default: wait for the files like Model Server",
    )
    parser.add_argument(
        "--workers",
        type=positive_integer,
        default=1,
        help="server processes sharing the ports (SO_REUSEPORT), each with its own copy of "
        "every model; more than one lifts the single event loop's limit of about a thousand "
        "requests a second (default 1)",
    )
    parser.add_argument(
        "--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    # Accepted for Model Server compatibility; metrics are always on here.
    parser.add_argument("--metrics_enable", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--metrics_list", help=argparse.SUPPRESS)
    parser.add_argument("--grpc_workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rest_workers", type=int, help=argparse.SUPPRESS)
    return parser


def positive_integer(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def configs_from_args(args: argparse.Namespace) -> list[ModelConfig]:
    if args.config_path:
        if args.model_path or args.model_name:
            raise ConfigError("use --config_path or --model_path/--model_name, not both")
        return read_config_file(Path(args.config_path))
    if not (args.model_path and args.model_name):
        raise ConfigError("give --model_path and --model_name, or --config_path")
    entry = {
        "config": {
            "name": args.model_name,
            "base_path": args.model_path,
            "target_device": args.target_device,
            "plugin_config": parse_json_object(args.plugin_config, "--plugin_config"),
            "nireq": args.nireq,
            "batch_size": args.batch_size,
            "shape": parse_shape(args.shape),
            "model_version_policy": parse_json_object(
                args.model_version_policy, "--model_version_policy"
            ),
        }
    }
    return [model_config_from_entry(entry, 0)]


@dataclass
class Server:
    args: argparse.Namespace
    registry: ModelRegistry
    plane: DataPlane
    devices: DeviceReport
    config_mtime: float | None = None

    async def metrics(self, request: web.Request) -> web.Response:
        self.plane.refresh_gauges()
        return web.Response(
            body=self.plane.metrics.exposition(),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def diagnostics(self, request: web.Request) -> web.Response:
        """What the device checks found, and what each loaded version runs on."""
        models = [
            {
                "name": loaded.name,
                "version": loaded.version,
                "targetDevice": loaded.config.target_device,
                "executionDevices": list(loaded.execution_devices),
            }
            for loaded in self.registry.loaded_versions()
        ]
        return web.json_response({"devices": self.devices.as_dict(), "models": models})

    def _config_mtime(self) -> float | None:
        try:
            return Path(self.args.config_path).stat().st_mtime if self.args.config_path else None
        except OSError:
            return None

    async def reload_config_if_changed(self) -> None:
        mtime = self._config_mtime()
        if mtime is None or mtime == self.config_mtime:
            return
        try:
            configs = configs_from_args(self.args)
            for config in configs:
                check_target_supported(config.target_device)
                verdict = self.devices.judge(config.target_device)
                if not verdict.can_start:
                    raise UnsupportedDeviceError(verdict.explanation)
        except (ConfigError, UnsupportedDeviceError) as error:
            log.error(
                "config %s not applied, keeping the running one: %s", self.args.config_path, error
            )
        else:
            log.info("config %s changed: applying it", self.args.config_path)
            self.registry.set_configs(configs)
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


async def serve(
    args: argparse.Namespace,
    configs: list[ModelConfig],
    core: ov.Core,
    devices: DeviceReport,
    group: WorkerGroup | None = None,
) -> int:
    metrics = Metrics()
    for probe in devices.probes:
        metrics.device_access.labels(probe.family, probe.path, probe.access.value).set(1)
    registry = ModelRegistry(core, metrics, args.cache_dir, args.max_queue)
    registry.compile_target = lambda target: devices.judge(target).compile_as or target
    registry.set_configs(configs)
    plane = DataPlane(registry, metrics, group)
    server = Server(args, registry, plane, devices)
    server.config_mtime = server._config_mtime()

    app = web.Application(client_max_size=args.max_request_bytes, middlewares=[json_errors])
    app.add_routes(KServeRest(plane, args.max_request_bytes).routes())
    app.add_routes(TfServingRest(plane, args.max_request_bytes).routes())
    app.add_routes(
        [
            web.get("/metrics", server.metrics),
            web.get(DIAGNOSTICS_PATH, server.diagnostics),
        ]
    )
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=args.shutdown_grace_seconds)
    await runner.setup()
    if args.rest_port:
        await web.TCPSite(
            runner, args.rest_bind_address, args.rest_port, reuse_port=group is not None
        ).start()
    grpc_server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", args.max_request_bytes),
            ("grpc.max_send_message_length", args.max_request_bytes),
            ("grpc.so_reuseport", int(group is not None)),
        ]
    )
    kserve_grpc.add_to_server(plane, grpc_server)
    if args.port:
        grpc_server.add_insecure_port(f"{args.grpc_bind_address}:{args.port}")
        await grpc_server.start()
    log.info(
        "kubevino-serve %s: gRPC on %s, REST on %s; OpenVINO %s sees %s",
        __version__,
        args.port or "off",
        args.rest_port or "off",
        ov.get_version(),
        ", ".join(registry.core.available_devices),
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    await registry.refresh()
    if not registry.ready():
        for reason in registry.not_ready_reasons():
            log.warning("not ready: %s", reason)
    poller = loop.create_task(server.poll())
    reporter = loop.create_task(_report_to_group(group, plane)) if group is not None else None
    gave_up: list[str] = []
    watchdog = (
        loop.create_task(_give_up_after(args.model_wait_seconds, registry, stop, gave_up))
        if args.model_wait_seconds is not None
        else None
    )
    await stop.wait()
    if watchdog is not None:
        watchdog.cancel()

    log.info("shutting down: no new requests, finishing in-flight ones")
    registry.shutting_down = True
    poller.cancel()
    if reporter is not None:
        reporter.cancel()
    grace = args.shutdown_grace_seconds
    await asyncio.gather(grpc_server.stop(grace), runner.cleanup())
    try:
        await asyncio.wait_for(registry.drain(), timeout=grace)
    except TimeoutError:
        log.warning("requests still running after %.0f s; exiting anyway", grace)
    log.info("stopped")
    return 1 if gave_up else 0


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


async def _give_up_after(
    seconds: float, registry: ModelRegistry, stop: asyncio.Event, gave_up: list[str]
) -> None:
    """In a pod, a model that will not appear is better reported than waited for: the
    termination message reaches the pod status, where the operator reads it."""
    await asyncio.sleep(seconds)
    stuck = registry.stuck_reasons()
    if registry.ready() or not stuck:
        return
    message = f"kubevino-serve gave up after {seconds:.0f} s: " + "; ".join(stuck)
    log.error("%s", message)
    write_termination_message(message)
    gave_up.append(message)
    stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    group = WorkerGroup.from_environment()
    worker = f" [worker {group.index}]" if group is not None else ""
    logging.basicConfig(
        level=args.log_level, format=f"%(asctime)s %(levelname)s %(name)s{worker}: %(message)s"
    )
    try:
        configs = configs_from_args(args)
        for config in configs:
            check_target_supported(config.target_device)
    except (ConfigError, UnsupportedDeviceError) as error:
        message = f"kubevino-serve cannot start: {error}"
        log.error("%s", message)
        write_termination_message(message)
        return 1
    core = ov.Core()
    try:
        devices = report_from_environment(core.available_devices)
    except ValueError as error:
        message = f"kubevino-serve cannot start: {error}"
        log.error("%s", message)
        write_termination_message(message)
        return 1
    if not _devices_allow_start(devices, configs):
        return 1
    if args.workers > 1 and group is None:
        return supervise(argv, args.workers, args.shutdown_grace_seconds)
    return asyncio.run(serve(args, configs, core, devices, group))


def _devices_allow_start(devices: DeviceReport, configs: list[ModelConfig]) -> bool:
    """One log line per target; a target that cannot run as asked stops the server, its
    paragraph in the termination message (never a silent run on another device)."""
    nodes = "; ".join(f"{p.path} {p.access.value}" for p in devices.probes) or "none given"
    log.info(
        "devices: uid %d, groups %s; OpenVINO sees %s; device nodes: %s",
        devices.identity.uid,
        devices.identity.groups_text(),
        ", ".join(devices.openvino_devices) or "nothing",
        nodes,
    )
    for target in dict.fromkeys(config.target_device for config in configs):
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
