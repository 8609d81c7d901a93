"""The generative model of a ``--task`` command line: loaded in the background (the server
answers health probes meanwhile), ready once its pipeline is, counted in /metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeVar

from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.generative.encoders import Embedder, Reranker
from kubevino_runtime.generative.facts import Endpoint, ModelFacts
from kubevino_runtime.generative.layout import is_gguf
from kubevino_runtime.generative.pipelines import (
    Loaded,
    TextGenerator,
    context_length,
    load,
    pipeline_name,
)
from kubevino_runtime.generative.settings import GenerativeSettings
from kubevino_runtime.generative.text_generation import Timing
from kubevino_runtime.metrics import Metrics

log = logging.getLogger("kubevino.generative")
Served = TypeVar("Served", TextGenerator, Embedder, Reranker)


class GenerativeService:
    def __init__(self, settings: GenerativeSettings, device: str, metrics: Metrics) -> None:
        self.settings = settings
        self.device = device
        self.metrics = metrics
        self.created = int(time.time())
        self.loaded: Loaded | None = None
        self.context_length: int | None = None  # tokens, where the model's files say
        self.failure: str | None = None
        self.shutting_down = False
        self.in_flight = 0
        self._steps_published = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def name(self) -> str:
        return self.settings.model_name

    async def load(self) -> None:
        started = time.monotonic()
        try:
            loaded = await asyncio.to_thread(load, self.settings, self.device)
            self.context_length = (
                loaded.context_length
                if isinstance(loaded, TextGenerator)
                else await asyncio.to_thread(context_length, self.settings.model_path)
            )
            self.loaded = loaded
        except Exception as error:  # GenAI's reasons are RuntimeErrors with its message
            self.failure = f"model {self.name}: {self.settings.model_path} failed to load: {error}"
            log.error("%s", self.failure)
            return
        log.info(
            "model %s (%s) loaded on %s in %.1f s",
            self.name,
            self.settings.task.value,
            self.device,
            time.monotonic() - started,
        )

    def pipeline_report(self) -> dict[str, Any]:
        """What /kubevino/diagnostics says of the model: the operator copies it into the
        InferenceModel's status.pipeline. Pipeline and context length once loaded."""
        report: dict[str, Any] = {
            "name": self.name,
            "task": self.settings.task.value,
            "format": "GGUF" if is_gguf(self.settings.model_path) else "OpenVINO IR",
            "device": self.device,  # GenAI does not tell which devices AUTO chose behind it
            "state": "Failed" if self.failure else "Loading" if self.loaded is None else "Loaded",
        }
        if self.loaded is not None:
            report["pipeline"] = pipeline_name(self.loaded)
        if self.context_length is not None:
            report["contextLength"] = self.context_length
        return report

    def ready(self) -> bool:
        return self.loaded is not None and not self.shutting_down

    def stuck_reasons(self) -> list[str]:
        """Why the model will not serve that waiting will not fix (loading is not stuck)."""
        return [self.failure] if self.failure else []

    def not_ready_reasons(self) -> list[str]:
        if self.failure:
            return [self.failure]
        if self.loaded is None:
            return [f"model {self.name} is loading"]
        return ["shutting down"] if self.shutting_down else []

    def facts(self) -> ModelFacts:
        return ModelFacts(
            name=self.name,
            task=self.settings.task,
            created=self.created,
            context_length=self.context_length,
            loaded=self.loaded is not None,
            failure=self.failure,
            shutting_down=self.shutting_down,
        )

    def text_generator(self, name: str) -> TextGenerator:
        return self._expect(name, TextGenerator, Endpoint.COMPLETIONS)

    def embedder(self, name: str) -> Embedder:
        return self._expect(name, Embedder, Endpoint.EMBEDDINGS)

    def reranker(self, name: str) -> Reranker:
        return self._expect(name, Reranker, Endpoint.RERANK)

    def _expect(self, name: str, kind: type[Served], endpoint: Endpoint) -> Served:
        self.facts().check_endpoint(name, endpoint)
        if not isinstance(self.loaded, kind):  # the task's pipeline, as check_endpoint saw
            raise ServingError(ErrorKind.INTERNAL, f"model {self.name} has no {kind.__name__}")
        return self.loaded

    # --- accounting --------------------------------------------------------------------------

    def started(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def ended(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drained(self) -> None:
        await self._idle.wait()

    def count_generation(self, prompt_tokens: int, timing: Timing) -> None:
        labels = (self.name,)
        self.metrics.prompt_tokens.labels(*labels).inc(prompt_tokens)
        self.metrics.generated_tokens.labels(*labels).inc(timing.tokens)
        if timing.time_to_first_token is not None:
            self.metrics.time_to_first_token.labels(*labels).observe(timing.time_to_first_token)
        if timing.time_per_output_token is not None:
            self.metrics.time_per_output_token.labels(*labels).observe(timing.time_per_output_token)

    def refresh_gauges(self) -> None:
        if not isinstance(self.loaded, TextGenerator):
            return
        engine = self.loaded.engine
        load = engine.load()
        steps = engine.steps  # counted by the pipeline's thread; published here, at scrapes
        self.metrics.generation_steps.labels(self.name).inc(steps - self._steps_published)
        self._steps_published = steps
        self.metrics.generation_running.labels(self.name).set(load.running)
        self.metrics.generation_waiting.labels(self.name).set(load.waiting)
        self.metrics.kv_cache_usage.labels(self.name).set(load.kv_cache_usage)

    def close(self) -> None:
        if isinstance(self.loaded, TextGenerator):
            self.loaded.engine.close()
