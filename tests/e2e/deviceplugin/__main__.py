"""A test device plugin for the kubelet (device-plugin API v1beta1, grpcio).

    python -m tests.e2e.deviceplugin [--mount-only] RESOURCE CONTAINER_PATH=HOST_PATH ...

Advertises one healthy device per mapping and hands the pod a DeviceSpec for it, the way
Intel's GPU/NPU plugins hand out /dev/dri and /dev/accel nodes: the container runtime then
creates the node in the container and grants it in the device cgroup, with no privilege.
``--mount-only`` plays a broken plugin: it bind-mounts the node instead, so the container sees
it but its device cgroup never grants it (what a pod that mounts /dev itself gets).
The gRPC code is generated from v1beta1.proto at start (grpcio-tools, a test dependency).
"""

from __future__ import annotations

import importlib
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from grpc_tools import protoc

PLUGIN_DIRECTORY = Path("/var/lib/kubelet/device-plugins")  # whatever --root-dir says


def _generated() -> tuple[ModuleType, ModuleType]:
    out = Path(tempfile.mkdtemp(prefix="deviceplugin-"))
    here = Path(__file__).parent
    status = protoc.main(
        ["protoc", f"-I{here}", f"--python_out={out}", f"--grpc_python_out={out}",
         str(here / "v1beta1.proto")]
    )  # fmt: skip
    if status != 0:
        raise SystemExit(f"protoc failed ({status})")
    sys.path.insert(0, str(out))
    return importlib.import_module("v1beta1_pb2"), importlib.import_module("v1beta1_pb2_grpc")


def main() -> None:
    arguments = sys.argv[1:]
    mount_only = "--mount-only" in arguments
    resource, *mappings = [argument for argument in arguments if argument != "--mount-only"]
    devices = dict(mapping.split("=", 1) for mapping in mappings)  # container path → host
    pb, pb_grpc = _generated()
    stopped = threading.Event()
    ids = {f"dev-{index}": path for index, path in enumerate(devices)}

    class Plugin(pb_grpc.DevicePluginServicer):  # type: ignore[misc,name-defined]
        def GetDevicePluginOptions(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.DevicePluginOptions()

        def ListAndWatch(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
            yield pb.ListAndWatchResponse(
                devices=[pb.Device(ID=device_id, health="Healthy") for device_id in ids]
            )
            stopped.wait()

        def GetPreferredAllocation(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.PreferredAllocationResponse()

        def PreStartContainer(self, request: Any, context: Any) -> Any:  # noqa: N802
            return pb.PreStartContainerResponse()

        def Allocate(self, request: Any, context: Any) -> Any:  # noqa: N802
            responses = []
            for container in request.container_requests:
                if mount_only:
                    mounts = [
                        pb.Mount(container_path=ids[i], host_path=devices[ids[i]])
                        for i in container.devices_ids
                    ]
                    responses.append(pb.ContainerAllocateResponse(mounts=mounts))
                    continue
                specs = [
                    pb.DeviceSpec(
                        container_path=ids[i], host_path=devices[ids[i]], permissions="rw"
                    )
                    for i in container.devices_ids
                ]
                responses.append(pb.ContainerAllocateResponse(devices=specs))
            return pb.AllocateResponse(container_responses=responses)

    endpoint = f"kubevino-test-{resource.replace('/', '-').replace('.', '-')}.sock"
    socket_path = PLUGIN_DIRECTORY / endpoint
    socket_path.unlink(missing_ok=True)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_DevicePluginServicer_to_server(Plugin(), server)
    server.add_insecure_port(f"unix://{socket_path}")
    server.start()
    with grpc.insecure_channel(f"unix://{PLUGIN_DIRECTORY / 'kubelet.sock'}") as channel:
        pb_grpc.RegistrationStub(channel).Register(
            pb.RegisterRequest(version="v1beta1", endpoint=endpoint, resource_name=resource),
            timeout=10,
        )
    print(f"registered {resource} at {socket_path}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop(grace=1).wait()
    socket_path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
