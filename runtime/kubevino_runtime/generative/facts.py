"""What the OpenAI front end knows of the generative model and its calls, without GenAI: the
model's name, task and state (in-process from the service, in a front end from the engine's
catalogue), and the checks that turn a request for the wrong model or endpoint into a 4xx.
Imported by front ends, so it imports nothing of OpenVINO."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, Protocol

from kubevino_runtime.errors import ErrorKind, ServingError, not_found
from kubevino_runtime.generative.settings import Task


class Endpoint(Enum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RERANK = "rerank"

    @property
    def task(self) -> Task:
        if self is Endpoint.EMBEDDINGS:
            return Task.EMBEDDINGS
        if self is Endpoint.RERANK:
            return Task.RERANK
        return Task.TEXT_GENERATION


_ENDPOINTS_OF = {
    Task.TEXT_GENERATION: "chat/completions and completions",
    Task.EMBEDDINGS: "embeddings",
    Task.RERANK: "rerank",
}


@dataclass(frozen=True)
class ModelFacts:
    name: str
    task: Task
    created: int  # when the server started serving it (OpenAI's model object says so)
    context_length: int | None  # tokens, where the model's files say
    loaded: bool
    failure: str | None  # why it failed to load
    shutting_down: bool

    def ready(self) -> bool:
        return self.loaded and not self.shutting_down

    def check_model(self, name: str) -> None:
        if name != self.name:
            raise not_found(f"The model `{name}` does not exist; this server serves `{self.name}`")
        if self.shutting_down:
            raise ServingError(ErrorKind.UNAVAILABLE, "the server is shutting down")
        if not self.loaded:
            raise ServingError(
                ErrorKind.UNAVAILABLE, self.failure or f"model {self.name} is still loading"
            )

    def check_endpoint(self, name: str, endpoint: Endpoint) -> None:
        """The model serves ``endpoint``: the right name, loaded, of the endpoint's task."""
        self.check_model(name)
        if endpoint.task is not self.task:
            raise ServingError(
                ErrorKind.INVALID,
                f"model {self.name} serves --task {self.task.value}, not "
                f"{_ENDPOINTS_OF[endpoint.task]}",
            )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "task": self.task.value}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ModelFacts:
        return cls(**{**raw, "task": Task(raw["task"])})


class GenerativeModel(Protocol):
    """The generative model as the OpenAI routes see it."""

    def facts(self) -> ModelFacts: ...


class Answers(Protocol):
    """Whoever answers the OpenAI calls: GenAI in this process, or the engine process.

    ``answer`` yields, for a non-streaming call, the one response document (nothing when the
    client went away meanwhile); for a streaming call, each event's document in order (an
    error after the start is one of them). A refusal before anything was generated (the
    prompt is too long, the chat template refuses the messages) is raised as a ServingError.
    ``client_gone`` is asked while generating: True stops the generation. Closing the iterator
    early (the client left mid-stream) cancels the generation too."""

    def answer(
        self, endpoint: Endpoint, document: dict[str, Any], client_gone: Callable[[], bool]
    ) -> AsyncGenerator[dict[str, Any], None]: ...
