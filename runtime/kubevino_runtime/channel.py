"""The notification channel between a front end and the engine process: one ``SOCK_SEQPACKET``
socket pair per front end, carrying small records (tensors travel in shared memory slots).

Each record is one packet, so a record never arrives in pieces and needs no framing. The data
path's records are packed binary (``struct``): a request names the engine (model version), the
slot, and each input's index, shape and offset in the slot; an answer gives the outputs' shapes
and offsets, or an error. The catalogue (which versions exist, their tensors, readiness, what
the diagnostics report) changes rarely and travels as JSON.

A generative model's calls (OpenAI's requests and what the engine answers, piece by piece) are
small JSON documents: they travel in ``Generative`` records, a document larger than one packet
split over several (``generative_records``, joined again by ``Fragments``).
"""

from __future__ import annotations

import array
import asyncio
import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from kubevino_runtime.errors import ErrorKind

MAX_RECORD = 1024 * 1024  # the catalogue of many models still fits in one packet
_BUFFER_BYTES = 4 * 1024 * 1024


class Kind(IntEnum):
    HELLO = 1  # front end → engine: my ports are open
    REQUEST = 2  # front end → engine: run this version on the tensors in this slot
    DONE = 3  # engine → front end: the outputs are in the slot
    FAILED = 4  # engine → front end: the request failed (kind and message)
    CATALOGUE = 5  # engine → front end: the versions served and the engine's state
    RELEASED = 6  # front end → engine: no request here holds this retired version any more
    GENERATIVE = 7  # either way: a generative call, its answers, its cancellation


class Step(IntEnum):
    """What a ``Generative`` record says of its call."""

    CALL = 1  # front end → engine: run this OpenAI request (JSON: endpoint, document)
    REPLY = 2  # engine → front end: a response document, or one streamed event
    FAILED = 3  # engine → front end: the call failed (JSON: OpenAI's error fields); its end
    END = 4  # engine → front end: no more replies
    PROGRESS = 5  # engine → front end: still generating (is the client still there?)
    CANCEL = 6  # front end → engine: the client went away: stop generating


_HEAD = struct.Struct("<B")
_REQUEST = struct.Struct("<BQIIQB")  # kind, request id, engine id, slot, slot size, inputs
_DONE = struct.Struct("<BQIQB")  # kind, request id, slot, slot size, outputs
_FAILED = struct.Struct("<BQB")  # kind, request id, error kind
_TENSOR = struct.Struct("<HBQ")  # tensor index, dimensions, offset; then the dimensions
_RELEASED = struct.Struct("<BI")  # kind, engine id
_GENERATIVE = struct.Struct("<BQBB")  # kind, call id, step, more fragments follow
# A document's bytes per record: well inside the receive size and the socket buffers.
FRAGMENT_BYTES = MAX_RECORD // 2
_ERROR_KINDS = list(ErrorKind)


@dataclass(frozen=True)
class Placed:
    """A tensor in a slot: which of the version's inputs or outputs, its shape, its offset."""

    index: int
    shape: tuple[int, ...]
    offset: int


@dataclass(frozen=True)
class Request:
    request_id: int
    engine_id: int
    slot: int
    slot_size: int
    inputs: list[Placed]
    slot_fd: int | None = None  # sent with the first request in a new slot


@dataclass(frozen=True)
class Done:
    request_id: int
    slot: int
    slot_size: int
    outputs: list[Placed]


@dataclass(frozen=True)
class Failed:
    request_id: int
    kind: ErrorKind
    message: str


@dataclass(frozen=True)
class Catalogue:
    content: dict[str, Any]


@dataclass(frozen=True)
class Hello:
    pass


@dataclass(frozen=True)
class Released:
    engine_id: int


@dataclass(frozen=True)
class Generative:
    """One step of a generative call; ``more``: ``data`` is a fragment, the rest follows in the
    next records of this channel (a sender queues all fragments of a document at once, so no
    other record comes between them)."""

    call_id: int
    step: Step
    data: bytes = b""
    more: bool = False


Record = Request | Done | Failed | Catalogue | Hello | Released | Generative


def generative_records(call_id: int, step: Step, data: bytes = b"") -> list[Generative]:
    """``data`` in records of at most ``FRAGMENT_BYTES`` each."""
    pieces = [data[start : start + FRAGMENT_BYTES] for start in range(0, len(data), FRAGMENT_BYTES)]
    pieces = pieces or [b""]
    last = len(pieces) - 1
    return [Generative(call_id, step, piece, index < last) for index, piece in enumerate(pieces)]


class Fragments:
    """Joins the fragments of the generative documents arriving on one channel."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def join(self, record: Generative) -> Generative | None:
        """The whole record once its last fragment is in; None while more are to come."""
        self._parts.append(record.data)
        if record.more:
            return None
        data = b"".join(self._parts)
        self._parts = []
        return Generative(record.call_id, record.step, data)


def _pack_tensors(tensors: list[Placed]) -> bytes:
    parts = []
    for tensor in tensors:
        parts.append(_TENSOR.pack(tensor.index, len(tensor.shape), tensor.offset))
        parts.append(struct.pack(f"<{len(tensor.shape)}q", *tensor.shape))
    return b"".join(parts)


def _unpack_tensors(data: bytes, start: int, count: int) -> list[Placed]:
    tensors = []
    for _ in range(count):
        index, ndim, offset = _TENSOR.unpack_from(data, start)
        start += _TENSOR.size
        shape = struct.unpack_from(f"<{ndim}q", data, start)
        start += 8 * ndim
        tensors.append(Placed(index, tuple(shape), offset))
    return tensors


def encode(record: Record) -> bytes:
    match record:
        case Request():
            head = _REQUEST.pack(
                Kind.REQUEST,
                record.request_id,
                record.engine_id,
                record.slot,
                record.slot_size,
                len(record.inputs),
            )
            return head + _pack_tensors(record.inputs)
        case Done():
            head = _DONE.pack(
                Kind.DONE, record.request_id, record.slot, record.slot_size, len(record.outputs)
            )
            return head + _pack_tensors(record.outputs)
        case Failed():
            head = _FAILED.pack(Kind.FAILED, record.request_id, _ERROR_KINDS.index(record.kind))
            return head + record.message.encode()
        case Catalogue():
            return _HEAD.pack(Kind.CATALOGUE) + json.dumps(record.content).encode()
        case Hello():
            return _HEAD.pack(Kind.HELLO)
        case Released():
            return _RELEASED.pack(Kind.RELEASED, record.engine_id)
        case Generative():
            head = _GENERATIVE.pack(Kind.GENERATIVE, record.call_id, record.step, record.more)
            return head + record.data
    raise TypeError(f"not a record: {record!r}")


def decode(data: bytes, fds: list[int]) -> Record:
    (kind,) = _HEAD.unpack_from(data)
    if kind == Kind.REQUEST:
        _, request_id, engine_id, slot, size, count = _REQUEST.unpack_from(data)
        inputs = _unpack_tensors(data, _REQUEST.size, count)
        return Request(request_id, engine_id, slot, size, inputs, fds[0] if fds else None)
    if kind == Kind.DONE:
        _, request_id, slot, size, count = _DONE.unpack_from(data)
        return Done(request_id, slot, size, _unpack_tensors(data, _DONE.size, count))
    if kind == Kind.FAILED:
        _, request_id, error = _FAILED.unpack_from(data)
        return Failed(request_id, _ERROR_KINDS[error], data[_FAILED.size :].decode())
    if kind == Kind.CATALOGUE:
        return Catalogue(json.loads(data[1:]))
    if kind == Kind.HELLO:
        return Hello()
    if kind == Kind.RELEASED:
        return Released(_RELEASED.unpack_from(data)[1])
    if kind == Kind.GENERATIVE:
        _, call_id, step, more = _GENERATIVE.unpack_from(data)
        return Generative(call_id, Step(step), data[_GENERATIVE.size :], bool(more))
    raise ValueError(f"unknown record kind {kind}")


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """The engine's end and the front end's end of a new channel."""
    engine_end, front_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (engine_end, front_end):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER_BYTES)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER_BYTES)
    return engine_end, front_end


class Channel:
    """One end of a channel on this process's event loop: records in through ``on_record``,
    records out through ``send`` (never blocking the loop), ``on_closed`` once the other end
    is gone (its process ended or closed it)."""

    def __init__(
        self,
        sock: socket.socket,
        on_record: Callable[[Record], None],
        on_closed: Callable[[], None],
    ) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self._on_record = on_record
        self._on_closed = on_closed
        self._loop = asyncio.get_running_loop()
        self._backlog: list[tuple[bytes, list[int]]] = []
        self.closed = False
        self._loop.add_reader(sock.fileno(), self._readable)

    def send(self, record: Record, fds: list[int] | None = None) -> None:
        """Queue a record; it leaves at once unless the socket's buffer is full."""
        if self.closed:
            return
        if self._backlog:
            self._backlog.append((encode(record), fds or []))
            return
        if not self._try_send(encode(record), fds or []):
            self._backlog.append((encode(record), fds or []))
            self._loop.add_writer(self.sock.fileno(), self._writable)

    def _try_send(self, data: bytes, fds: list[int]) -> bool:
        try:
            if fds:
                ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                self.sock.sendmsg([data], ancillary)
            else:
                self.sock.send(data)
        except BlockingIOError:
            return False
        except OSError:
            self._close(notify=True)
            return True
        return True

    def _writable(self) -> None:
        while self._backlog:
            data, fds = self._backlog[0]
            if not self._try_send(data, fds):
                return
            self._backlog.pop(0)
        if not self.closed:
            self._loop.remove_writer(self.sock.fileno())

    def _readable(self) -> None:
        for _ in range(64):  # several records per wake-up, but let other callbacks run
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, MAX_RECORD, 1)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._close(notify=True)
                return
            self._on_record(decode(data, fds))

    def _close(self, *, notify: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self.sock.fileno())
        self._loop.remove_writer(self.sock.fileno())
        self._backlog.clear()
        if notify:
            self._on_closed()

    def close(self) -> None:
        """Close this end (the other side sees the channel end); ``on_closed`` is not called."""
        self._close(notify=False)
        self.sock.close()
