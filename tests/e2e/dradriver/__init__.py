"""A test DRA driver for the kubelet (resource.k8s.io/v1, kubelet DRA gRPC v1, grpcio).

    python -m tests.e2e.dradriver DRIVER NODE KUBELET_ROOT CDI_DIR NAME=CONTAINER_PATH=HOST_PATH ...

Registers with the kubelet through its plugin registry (type DRAPlugin, service v1.DRAPlugin),
writes one static CDI spec naming each fake device node, and answers NodePrepareResources with
the CDI device IDs of its devices (it has no API access to read the claim's allocation; the
tests give a node one device, which is then the allocated one). The ResourceSlice and
DeviceClass are the test's to
apply once ``registered`` is printed: the kubelet wipes its node's slices when it starts and a
gone driver's about 30 s later, as Intel's driver and the upstream example republish them.
Prepared and unprepared claims are printed one per line (``prepared <uid>``), for the tests.
The gRPC code is generated from the vendored kubelet protos at start (grpcio-tools).
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import tempfile
import threading
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from grpc_tools import protoc

CDI_VENDOR = "kubevino.test"
CDI_CLASS = "gpu"


def _generated(name: str) -> tuple[ModuleType, ModuleType]:
    out = Path(tempfile.mkdtemp(prefix=f"dradriver-{name}-"))
    here = Path(__file__).parent
    status = protoc.main(
        ["protoc", f"-I{here}", f"--python_out={out}", f"--grpc_python_out={out}",
         str(here / f"{name}.proto")]
    )  # fmt: skip
    if status != 0:
        raise SystemExit(f"protoc failed ({status}) for {name}.proto")
    sys.path.insert(0, str(out))
    return importlib.import_module(f"{name}_pb2"), importlib.import_module(f"{name}_pb2_grpc")


def cdi_spec(devices: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """One CDI device per fake node; no uid/gid: the runtime gives the container's own."""
    return {
        "cdiVersion": "0.5.0",
        "kind": f"{CDI_VENDOR}/{CDI_CLASS}",
        "devices": [
            {
                "name": name,
                "containerEdits": {
                    "deviceNodes": [{"path": container, "hostPath": host, "type": "c"}]
                },
            }
            for name, (container, host) in sorted(devices.items())
        ],
    }


def main() -> None:
    driver, node, kubelet_root, cdi_dir, *mappings = sys.argv[1:]
    devices: dict[str, tuple[str, str]] = {}
    for mapping in mappings:
        name, container, host = mapping.split("=", 2)
        devices[name] = (container, host)
    registration_pb, registration_grpc = _generated("pluginregistration")
    dra_pb, dra_grpc = _generated("dra")
    stopped = threading.Event()
    spec_path = Path(cdi_dir) / f"{driver}.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(cdi_spec(devices)))
    registry = Path(kubelet_root) / "plugins_registry" / f"{driver}-reg.sock"
    endpoint = Path(kubelet_root) / "plugins" / driver / "dra.sock"
    endpoint.parent.mkdir(parents=True, exist_ok=True)
    registry.parent.mkdir(parents=True, exist_ok=True)

    class Registration(registration_grpc.RegistrationServicer):  # type: ignore[misc,name-defined]
        def GetInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
            return registration_pb.PluginInfo(
                type="DRAPlugin",
                name=driver,
                endpoint=str(endpoint),
                supported_versions=["v1.DRAPlugin"],
            )

        def NotifyRegistrationStatus(self, request: Any, context: Any) -> Any:  # noqa: N802
            if request.plugin_registered:
                print("registered", flush=True)
            else:
                print(f"registration refused: {request.error}", flush=True)
            return registration_pb.RegistrationStatusResponse()

    class Plugin(dra_grpc.DRAPluginServicer):  # type: ignore[misc,name-defined]
        def NodePrepareResources(self, request: Any, context: Any) -> Any:  # noqa: N802
            response = dra_pb.NodePrepareResourcesResponse()
            for claim in request.claims:
                prepared = response.claims[claim.uid]
                for name in sorted(devices):
                    prepared.devices.add(
                        pool_name=node,
                        device_name=name,
                        cdi_device_ids=[f"{CDI_VENDOR}/{CDI_CLASS}={name}"],
                    )
                print(f"prepared {claim.uid} {claim.namespace}/{claim.name}", flush=True)
            return response

        def NodeUnprepareResources(self, request: Any, context: Any) -> Any:  # noqa: N802
            response = dra_pb.NodeUnprepareResourcesResponse()
            for claim in request.claims:
                response.claims[claim.uid].SetInParent()
                print(f"unprepared {claim.uid} {claim.namespace}/{claim.name}", flush=True)
            return response

    for path in (registry, endpoint):
        path.unlink(missing_ok=True)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    registration_grpc.add_RegistrationServicer_to_server(Registration(), server)
    dra_grpc.add_DRAPluginServicer_to_server(Plugin(), server)
    server.add_insecure_port(f"unix://{endpoint}")
    server.add_insecure_port(f"unix://{registry}")
    server.start()
    print(f"serving {driver} at {endpoint}, registering at {registry}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop(grace=1).wait()
    for path in (registry, endpoint, spec_path):
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
