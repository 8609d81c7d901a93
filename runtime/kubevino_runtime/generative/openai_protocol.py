"""The OpenAI API as Model Server's /v3 serves it: requests checked into typed values (every
client mistake a 4xx with OpenAI's error object), responses and stream chunks built as dicts.
"""

from __future__ import annotations

import base64
import math
import re
import time
import uuid
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.jsonbody import parse_json_body

# Documents one rerank request may hold (Model Server's --max_allowed_chunks default).
MAX_RERANK_DOCUMENTS = 10_000
ERROR_TYPES = {
    ErrorKind.NOT_FOUND: "invalid_request_error",
    ErrorKind.INVALID: "invalid_request_error",
    ErrorKind.TOO_LARGE: "invalid_request_error",
    ErrorKind.OVERLOADED: "server_overloaded",
    ErrorKind.UNAVAILABLE: "service_unavailable",
    ErrorKind.INTERNAL: "server_error",
}


class RequestError(ServingError):
    """A client mistake that names the request field at fault (OpenAI's ``param``)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(ErrorKind.INVALID, message)
        self.param = param
        self.code = code


def error_body(error: ServingError) -> dict[str, Any]:
    """OpenAI's error object."""
    return {
        "error": {
            "message": error.message,
            "type": ERROR_TYPES[error.kind],
            "param": getattr(error, "param", None),
            "code": getattr(error, "code", None)
            or ("model_not_found" if error.kind is ErrorKind.NOT_FOUND else None),
        }
    }


def error_fields(error: ServingError) -> dict[str, Any]:
    """What rebuilds ``error`` in another process (``error_from_fields``)."""
    return {
        "kind": error.kind.value,
        "message": error.message,
        "param": getattr(error, "param", None),
        "code": getattr(error, "code", None),
    }


def error_from_fields(fields: dict[str, Any]) -> ServingError:
    kind = ErrorKind(fields["kind"])
    if kind is ErrorKind.INVALID:
        return RequestError(fields["message"], fields.get("param"), fields.get("code"))
    return ServingError(kind, fields["message"])


def parse_json(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object. What Python's parser would take but JSON is not
    (NaN, Infinity, nesting deep enough to exhaust its recursion) is refused as malformed, and
    so is a lone UTF-16 surrogate (``"\\ud800"``): valid JSON escape, but no Unicode text, which
    the tokenizers cannot encode."""
    document = parse_json_body(body)
    if not isinstance(document, dict):
        raise RequestError("the request body must be a JSON object")
    _refuse_lone_surrogates(document)
    return document


def _refuse_lone_surrogates(document: dict[str, Any]) -> None:
    pending: list[Any] = [document]
    while pending:  # iterative: parse_json_body bounds the depth, not the width
        value = pending.pop()
        if isinstance(value, dict):
            pending += value.keys()
            pending += value.values()
        elif isinstance(value, list):
            pending += value
        elif isinstance(value, str) and _has_surrogate(value):
            raise RequestError(
                f"the request holds a lone UTF-16 surrogate in {value[:40]!r}, which is not "
                "Unicode text; send text as UTF-8, or escape a character outside the BMP as a "
                "surrogate pair"
            )


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class _Strict(BaseModel):
    # Strict: "10" is not a number; unknown fields are ignored as OpenAI's server does.
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(_Strict):
    include_usage: bool = False


# GenAI keeps token counts, top_k and the seed as 64-bit unsigned integers (size_t); a larger
# number is the client's mistake, not a TypeError in the setter.
UINT64_MAX = 2**64 - 1
TokenCount = Annotated[int, Field(ge=1, le=UINT64_MAX)]
# An empty stop string would match before anything, and with beam search (n above 1 without
# sampling) it makes GenAI's pipeline fail its step and leak KV cache.
StopString = Annotated[str, Field(min_length=1)]


class _Sampling(_Strict):
    """What chat/completions and completions share."""

    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: TokenCount | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=-1, le=UINT64_MAX)] | None = None
    seed: Annotated[int, Field(ge=0, le=UINT64_MAX)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] = 1
    stop: StopString | Annotated[list[StopString], Field(max_length=16)] | None = None
    ignore_eos: bool = False
    include_stop_str_in_output: bool = False
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _options_need_stream(self) -> _Sampling:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options needs stream: true")
        return self

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def stop_strings(self) -> set[str]:
        if self.stop is None:
            return set()
        return {self.stop} if isinstance(self.stop, str) else set(self.stop)

    def token_limit(self) -> int | None:
        return self.max_tokens

    def token_limit_field(self) -> str:
        return "max_tokens"

    @property
    def prompt_field(self) -> str:
        """The field the prompt comes from, for errors about it."""
        return "prompt"


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: TokenCount | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=0)] | None = None  # GenAI gives the chosen one

    def token_limit(self) -> int | None:
        # OpenAI's newer name wins over the deprecated one.
        return self.max_completion_tokens or self.max_tokens

    def token_limit_field(self) -> str:
        return "max_completion_tokens" if self.max_completion_tokens else "max_tokens"

    @property
    def prompt_field(self) -> str:
        return "messages"


class CompletionRequest(_Sampling):
    prompt: str
    echo: bool = False
    logprobs: Annotated[int, Field(ge=0, le=1)] | None = None  # GenAI gives the chosen one

    @model_validator(mode="after")
    def _no_echo(self) -> CompletionRequest:
        if self.echo:
            raise ValueError("echo is not supported")
        return self


class EmbeddingRequest(_Strict):
    model: str
    input: str | Annotated[list[str], Field(min_length=1)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: None = None  # the model's dimensions only

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class RerankRequest(_Strict):
    model: str
    query: str
    documents: Annotated[list[str], Field(min_length=1)]
    top_n: Annotated[int, Field(ge=1)] | None = None
    return_documents: bool = False


Request = TypeVar("Request", bound=BaseModel)
# Pydantic names the branch of a union it tried (str, constrained-str, list[str]) among the
# fields in an error's location; the client's field is the rest.
_UNION_BRANCH = re.compile(r"^(str|int|float|bool|none|list|dict)$|[\[\-]")


def parse_request(kind: type[Request], document: dict[str, Any]) -> Request:
    """The request as ``kind``, or a RequestError naming the first field at fault."""
    try:
        return kind.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        fields = [part for part in first["loc"] if not _UNION_BRANCH.search(str(part))]
        param = ".".join(str(part) for part in fields) or None
        message = first["msg"].removeprefix("Value error, ")
        raise RequestError(f"{param}: {message}" if param else message, param) from None


# --- responses ----------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_logprobs(tokens: list[str], log_probs: list[float]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": token,
                "logprob": _finite(value),
                "bytes": list(token.encode()),
                "top_logprobs": [],
            }
            for token, value in zip(tokens, log_probs, strict=False)
        ]
    }


def completion_logprobs(tokens: list[str], log_probs: list[float], offset: int) -> dict[str, Any]:
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [_finite(value) for value in log_probs],
        "top_logprobs": [
            {token: _finite(value)} for token, value in zip(tokens, log_probs, strict=False)
        ],
        "text_offset": offsets,
    }


def _finite(value: float) -> float:
    # JSON has no -inf: a token of probability zero as the least float there is.
    return value if math.isfinite(value) else -9999.0


def embedding_data(vectors: list[list[float]], encoding_format: str) -> list[dict[str, Any]]:
    data = []
    for index, vector in enumerate(vectors):
        if encoding_format == "base64":
            encoded: Any = base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode()
        else:
            encoded = [float(value) for value in vector]
        data.append({"object": "embedding", "embedding": encoded, "index": index})
    return data
