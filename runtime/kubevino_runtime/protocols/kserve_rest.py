"""KServe v2 REST, with the binary tensor data extension (what tritonclient.http speaks)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

from kubevino_runtime.dataplane import DataPlane
from kubevino_runtime.errors import ServingError, invalid
from kubevino_runtime.protocols.http_common import handled, read_body
from kubevino_runtime.served import ServedVersion
from kubevino_runtime.tensors import (
    BINARY_HEADER,
    from_json_data,
    from_raw,
    json_ready,
    kserve_datatype,
    numpy_dtype,
    split_binary_body,
)

API = "KServe"


def _parameters(owner: dict[str, Any], where: str) -> dict[str, Any]:
    """An object's optional ``parameters``: KServe defines them as a JSON object."""
    parameters = owner.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise invalid(f"{where}: 'parameters' must be an object")
    return parameters


def _decode_inputs(header: dict[str, Any], payload: memoryview) -> dict[str, npt.NDArray[Any]]:
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise invalid("request needs a non-empty 'inputs' array")
    inputs: dict[str, npt.NDArray[Any]] = {}
    offset = 0
    for index, item in enumerate(raw_inputs):
        if not isinstance(item, dict):
            raise invalid(f"inputs[{index}] must be an object")
        name, shape, datatype = item.get("name"), item.get("shape"), item.get("datatype")
        if not isinstance(name, str):
            raise invalid(f"inputs[{index}] needs a 'name'")
        if not isinstance(datatype, str):
            raise invalid(f"input {name}: 'datatype' is required")
        if name in inputs:
            raise invalid(f"input {name} is given twice")
        dtype = numpy_dtype(datatype, name)
        size = _parameters(item, f"input {name}").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise invalid(f"input {name}: binary_data_size must be a number of bytes")
            if offset + size > len(payload):
                raise invalid(
                    f"input {name}: binary_data_size {size} runs past the {len(payload)} "
                    "bytes after the JSON header"
                )
            inputs[name] = from_raw(bytes(payload[offset : offset + size]), shape, dtype, name)
            offset += size
        elif "data" in item:
            inputs[name] = from_json_data(item["data"], shape, dtype, name)
        else:
            raise invalid(f"input {name} has neither 'data' nor binary_data_size")
    if offset != len(payload):
        raise invalid(f"{len(payload) - offset} bytes after the inputs belong to no input")
    return inputs


def _wanted_outputs(header: dict[str, Any], available: list[str]) -> list[tuple[str, bool]]:
    default_binary = _parameters(header, "request").get("binary_data_output", False)
    if not isinstance(default_binary, bool):
        raise invalid("parameters.binary_data_output must be true or false")
    requested = header.get("outputs")
    if requested is None:
        return [(name, default_binary) for name in available]
    if not isinstance(requested, list):
        raise invalid("'outputs' must be an array of {\"name\": ...} objects")
    if not requested:
        return [(name, default_binary) for name in available]
    wanted = []
    for index, item in enumerate(requested):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise invalid(f"outputs[{index}] must be an object with a 'name'")
        if name not in available:
            raise invalid(f"model has no output {name!r}; its outputs are {', '.join(available)}")
        binary = _parameters(item, f"output {name}").get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise invalid(f"output {name}: parameters.binary_data must be true or false")
        wanted.append((name, binary))
    return wanted


def _request_id(header: dict[str, Any]) -> str | None:
    """The optional request ``id``, echoed in the answer: KServe defines it as a string."""
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise invalid("'id' must be a string")
    return request_id


def _encode_outputs(
    wanted: list[tuple[str, bool]], outputs: dict[str, npt.NDArray[Any]]
) -> tuple[list[dict[str, Any]], list[bytes]]:
    described: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, binary in wanted:
        array = np.ascontiguousarray(outputs[name])
        entry: dict[str, Any] = {
            "name": name,
            "datatype": kserve_datatype(array.dtype),
            "shape": list(array.shape),
        }
        if binary:
            chunk = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = json_ready(array)
        described.append(entry)
    return described, chunks


class KServeRest:
    def __init__(self, plane: DataPlane, max_body: int) -> None:
        self.plane = plane
        self.max_body = max_body

    def routes(self) -> list[web.RouteDef]:
        model = "/v2/models/{name}"
        versioned = "/v2/models/{name}/versions/{version}"
        return [
            web.get("/v2", handled(self.server_metadata)),
            web.get("/v2/health/live", handled(self.live)),
            web.get("/v2/health/ready", handled(self.ready)),
            web.get(model, handled(self.model_metadata)),
            web.get(versioned, handled(self.model_metadata)),
            web.get(model + "/ready", handled(self.model_ready)),
            web.get(versioned + "/ready", handled(self.model_ready)),
            web.post(model + "/infer", handled(self.infer)),
            web.post(versioned + "/infer", handled(self.infer)),
        ]

    async def server_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(self.plane.server_metadata())

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        if self.plane.ready():
            return web.json_response({"ready": True})
        reasons = self.plane.not_ready_reasons() or ["starting or shutting down"]
        return web.json_response({"ready": False, "reasons": reasons}, status=503)

    async def model_metadata(self, request: web.Request) -> web.Response:
        info = request.match_info
        return web.json_response(self.plane.model_metadata(info["name"], info.get("version")))

    async def model_ready(self, request: web.Request) -> web.Response:
        info = request.match_info
        ready = self.plane.model_ready(info["name"], info.get("version"))
        return web.json_response(
            {"name": info["name"], "ready": ready}, status=200 if ready else 503
        )

    async def infer(self, request: web.Request) -> web.Response:
        info = request.match_info
        with self.plane.version(info["name"], info.get("version")).held() as loaded:
            return await self._infer(request, loaded)

    async def _infer(self, request: web.Request, loaded: ServedVersion) -> web.Response:
        try:
            body = await read_body(request, self.max_body)
            parsed = split_binary_body(body, request.headers.get(BINARY_HEADER))
            inputs = _decode_inputs(parsed.header, parsed.payload)
            wanted = _wanted_outputs(parsed.header, [output.name for output in loaded.outputs])
            request_id = _request_id(parsed.header)
        except ServingError:
            self.plane.count_failure(API, "REST", "ModelInfer", loaded.name, str(loaded.version))
            raise
        outputs = await self.plane.infer(loaded, inputs, API, "REST", "ModelInfer")
        described, chunks = _encode_outputs(wanted, outputs)
        response: dict[str, Any] = {
            "model_name": loaded.name,
            "model_version": str(loaded.version),
            "outputs": described,
        }
        if request_id is not None:
            response["id"] = request_id
        head = json.dumps(response).encode()
        if not chunks:
            return web.Response(body=head, content_type="application/json")
        return web.Response(
            body=b"".join([head, *chunks]),
            headers={BINARY_HEADER: str(len(head))},
            content_type="application/octet-stream",
        )
