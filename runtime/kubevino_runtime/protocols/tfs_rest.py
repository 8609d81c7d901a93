"""TensorFlow Serving REST API: predict (row and column formats), model status and metadata.

Status and metadata are the gRPC API's messages in protobuf's JSON mapping (tfs_messages), as
Model Server sends them. A version of 0 in a path means what no version means: the highest
loaded version for predict and metadata, every version for status.
"""

from __future__ import annotations

from typing import Any

import numpy.typing as npt
from aiohttp import web

from kubevino_runtime.dataplane import DataPlane
from kubevino_runtime.errors import ServingError, invalid
from kubevino_runtime.jsonbody import parse_json_body
from kubevino_runtime.protocols.http_common import handled, read_body
from kubevino_runtime.protocols.tfs_messages import as_json, model_metadata, model_status
from kubevino_runtime.served import ServedVersion, TensorInfo
from kubevino_runtime.tensors import json_array
from kubevino_runtime.versions import parse_version

API = "TensorFlowServing"
_NAME = "{name:[^/:]+}"
_VERSION = "{version:[0-9]+}"


def _array(value: Any, info: TensorInfo) -> npt.NDArray[Any]:
    return json_array(value, info.element_type, info.name)


def _row_inputs(instances: Any, loaded: ServedVersion) -> dict[str, npt.NDArray[Any]]:
    if not isinstance(instances, list) or not instances:
        raise invalid("'instances' must be a non-empty list")
    if len(loaded.inputs) == 1 and not isinstance(instances[0], dict):
        info = loaded.inputs[0]
        return {info.name: _array(instances, info)}
    columns: dict[str, list[Any]] = {info.name: [] for info in loaded.inputs}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise invalid(f"instances[{index}] must be an object naming each input")
        unknown = sorted(set(instance) - set(columns))
        if unknown:
            raise invalid(f"model {loaded.name} has no input {', '.join(unknown)}")
        for name in columns:
            if name not in instance:
                raise invalid(f"instances[{index}] lacks input {name}")
            columns[name].append(instance[name])
    return {info.name: _array(columns[info.name], info) for info in loaded.inputs}


def _column_inputs(inputs: Any, loaded: ServedVersion) -> dict[str, npt.NDArray[Any]]:
    if not isinstance(inputs, dict):
        if len(loaded.inputs) != 1:
            raise invalid("'inputs' must be an object naming each input of this model")
        info = loaded.inputs[0]
        return {info.name: _array(inputs, info)}
    infos = loaded.input_by_name
    unknown = sorted(set(inputs) - set(infos))
    if unknown:
        raise invalid(f"model {loaded.name} has no input {', '.join(unknown)}")
    return {name: _array(value, infos[name]) for name, value in inputs.items()}


def _rows(outputs: dict[str, npt.NDArray[Any]]) -> list[Any]:
    if len(outputs) == 1:
        (array,) = outputs.values()
        rows: list[Any] = array.tolist()
        return rows
    batch = min(array.shape[0] for array in outputs.values())
    return [{name: array[i].tolist() for name, array in outputs.items()} for i in range(batch)]


class TfServingRest:
    def __init__(self, plane: DataPlane, max_body: int) -> None:
        self.plane = plane
        self.max_body = max_body

    def routes(self) -> list[web.RouteDef]:
        model = f"/v1/models/{_NAME}"
        versioned = f"{model}/versions/{_VERSION}"
        return [
            web.get(model, handled(self.status)),
            web.get(versioned, handled(self.status)),
            web.get(model + "/metadata", handled(self.metadata)),
            web.get(versioned + "/metadata", handled(self.metadata)),
            web.post(model + ":predict", handled(self.predict)),
            web.post(versioned + ":predict", handled(self.predict)),
        ]

    async def status(self, request: web.Request) -> web.Response:
        info = request.match_info
        # Digits only (the route says so), but as many as a client sends: past int64 no
        # model has that version.
        version = parse_version(info["version"]) if "version" in info else None
        response = model_status(self.plane.registry, info["name"], version)
        return web.json_response(as_json(response))

    async def metadata(self, request: web.Request) -> web.Response:
        info = request.match_info
        loaded = self.plane.version(info["name"], info.get("version"))
        return web.json_response(as_json(model_metadata(loaded)))

    async def predict(self, request: web.Request) -> web.Response:
        info = request.match_info
        with self.plane.version(info["name"], info.get("version")).held() as loaded:
            return await self._predict(request, loaded)

    async def _predict(self, request: web.Request, loaded: ServedVersion) -> web.Response:
        try:
            body = await read_body(request, self.max_body)
            document = parse_json_body(body)
            if not isinstance(document, dict):
                raise invalid("request body must be a JSON object")
            if ("instances" in document) == ("inputs" in document):
                raise invalid("request needs exactly one of 'instances' (row) or 'inputs' (column)")
            row_format = "instances" in document
            inputs = (
                _row_inputs(document["instances"], loaded)
                if row_format
                else _column_inputs(document["inputs"], loaded)
            )
        except ServingError:
            self.plane.count_failure(API, "REST", "Predict", loaded.name, str(loaded.version))
            raise
        outputs = await self.plane.infer(loaded, inputs, API, "REST", "Predict")
        if row_format:
            return web.json_response({"predictions": _rows(outputs)})
        if len(outputs) == 1:
            (array,) = outputs.values()
            return web.json_response({"outputs": array.tolist()})
        return web.json_response({"outputs": {k: v.tolist() for k, v in outputs.items()}})
