"""KServe's Python model server around one OpenVINO IR: the other side of bench/kserve_python.py.

Runs under the bench's own KServe virtualenv (bench/kserve-requirements.txt), never the
project's: ``kserve`` is not installed there. It serves the KServe v2 protocol over REST (binary
tensors included) and gRPC, as KServe's ModelServer does for any ``kserve.Model``.

The model is compiled the way kubevino-serve compiles it (same device, same plugin config, so the
same THROUGHPUT hint, and as many infer requests as OpenVINO's optimal number), and ``predict``
is a coroutine that hands the inference to OpenVINO's own asynchronous call: KServe runs a
synchronous ``predict`` on its event loop, which would serialise every request.

    <kserve venv>/bin/python bench/kserve_openvino_model.py --model_file DIR/1/model.xml
        [--target_device CPU] [--plugin_config JSON] [KServe's flags: --http_port, --grpc_port,
        --workers, --model_name, --enable_latency_logging, --log_config_file, ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import openvino as ov
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.numpy_codec import from_np_dtype
from kserve.utils.utils import generate_uuid


# kserve is only installed in the bench's own virtualenv, so mypy sees Model as Any.
class OpenVinoModel(Model):  # type: ignore[misc]
    def __init__(
        self, name: str, model_file: str, device: str, plugin_config: dict[str, Any]
    ) -> None:
        super().__init__(name)
        self.model_file = model_file
        self.device = device
        self.plugin_config = plugin_config
        self.load()

    def load(self) -> bool:
        compiled = ov.Core().compile_model(self.model_file, self.device, self.plugin_config)
        self.nireq = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._compiled = compiled
        self._requests = [compiled.create_infer_request() for _ in range(self.nireq)]
        self._finished: list[asyncio.Future[None] | None] = [None] * self.nireq
        for index, request in enumerate(self._requests):
            request.set_callback(self._on_finished, index)
        # Made on first use, in the loop that serves: the REST and gRPC servers share one loop.
        self._idle: asyncio.Queue[int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The bench reads this line from the log.
        print(f"kserve-openvino: nireq {self.nireq}", flush=True)
        self.ready = True
        return True

    # With --workers above 1 KServe starts its REST processes with multiprocessing's spawn and
    # pickles the model into each of them; a compiled model cannot be pickled, so each process
    # compiles its own copy (what KServe's worker processes amount to).
    def __getstate__(self) -> dict[str, Any]:
        unpicklable = {"_compiled", "_requests", "_finished", "_idle", "_loop"}
        return {key: value for key, value in self.__dict__.items() if key not in unpicklable}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.load()

    def _on_finished(self, index: int) -> None:
        # Called on an OpenVINO thread: only the loop may settle the future.
        finished = self._finished[index]
        assert self._loop is not None and finished is not None
        self._loop.call_soon_threadsafe(finished.set_result, None)

    def _idle_requests(self) -> asyncio.Queue[int]:
        if self._idle is None:
            self._loop = asyncio.get_running_loop()
            self._idle = asyncio.Queue()
            for index in range(self.nireq):
                self._idle.put_nowait(index)
        return self._idle

    async def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        inputs = {tensor.name: tensor.as_numpy() for tensor in payload.inputs}
        idle = self._idle_requests()
        index = await idle.get()
        try:
            assert self._loop is not None
            finished = self._loop.create_future()
            self._finished[index] = finished
            request = self._requests[index]
            request.start_async(inputs)
            await finished
            outputs = [
                (port.get_any_name(), request.get_tensor(port).data.copy())
                for port in self._compiled.outputs
            ]
        finally:
            idle.put_nowait(index)
        # Built as KServe's own get_predict_response builds one, with the model's output names.
        infer_outputs = []
        for name, array in outputs:
            output = InferOutput(name, list(array.shape), from_np_dtype(array.dtype))
            output.set_data_from_numpy(array, binary_data=payload.use_binary_outputs)
            infer_outputs.append(output)
        return InferResponse(
            response_id=payload.id or generate_uuid(),
            model_name=self.name,
            infer_outputs=infer_outputs,
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        parents=[model_server.parser], description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model_file", required=True, help="the IR's .xml")
    parser.add_argument("--target_device", default="CPU")
    parser.add_argument(
        "--plugin_config",
        default=json.dumps({"PERFORMANCE_HINT": "THROUGHPUT"}),
        help="OpenVINO compile properties, JSON (kubevino-serve's flag of the same name)",
    )
    args, _ = parser.parse_known_args()
    model = OpenVinoModel(
        args.model_name, args.model_file, args.target_device, json.loads(args.plugin_config)
    )
    ModelServer().start([model])


if __name__ == "__main__":
    main()
