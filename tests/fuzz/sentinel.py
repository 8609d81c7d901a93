"""Watches one server process of the fuzz tier between cases.

After every ``BATCH`` cases (and at the end of each test) the server must still be running,
answer its known-valid requests (every protocol's, with what in-process OpenVINO or GenAI
computes), have logged no traceback, and hold no more than ``RSS_HEADROOM_MB`` of memory beyond
what it held after warming up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from tests.fuzz.budget import count_case
from tests.runtime.serving import RunningServer

BATCH = 100
WARM_UP_ROUNDS = 3
# The server takes bodies of up to 1 MiB (conftest). Decoding one may transiently cost tens
# of MiB of Python objects, which the allocator keeps for reuse; a leak of even a few KiB per
# case, or one allocation sized from a hostile shape, goes past this within a CI run.
RSS_HEADROOM_MB = 128
TRACEBACK = "Traceback (most recent call last)"
# aiohttp logs, with a traceback, each request its HTTP parser refused (and answered 400):
# bytes that are no HTTP request, a body not in its Content-Encoding (raised again, wrapped,
# when aiohttp drains the rest of a body the handler already refused). Not the server's fault.
PARSER_REFUSAL = re.compile(
    r"(aiohttp\.http_exceptions\.\w+|aiohttp\.web_protocol\.RequestPayloadError): 400"
)
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.M)
WATCHED: list[Sentinel] = []  # every module's sentinel, for the session summary


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"/proc/{pid}/status has no VmRSS")


def unexpected_tracebacks(log: str) -> list[str]:
    """The log records with a traceback that is not an HTTP parser's refusal."""
    starts = [match.start() for match in LOG_RECORD.finditer(log)] or [0]
    records = [log[start:end] for start, end in zip(starts, [*starts[1:], len(log)], strict=True)]
    return [
        record[-6000:]
        for record in records
        if TRACEBACK in record and not PARSER_REFUSAL.match(_final_exception(record))
    ]


def _final_exception(record: str) -> str:
    """The line naming the exception a traceback ended with (its message may go on, indented,
    on the lines after it)."""
    lines = [line for line in record.splitlines() if line and not line[0].isspace()]
    return lines[-1] if lines else ""


class ServerFaultError(AssertionError):
    """The server stopped serving correctly while it was being fuzzed."""


class Sentinel:
    def __init__(
        self,
        server: RunningServer,
        known_valid_answers: Callable[[], None],
        *,
        rss_headroom_mb: float = RSS_HEADROOM_MB,
    ) -> None:
        """``known_valid_answers`` sends the known-valid requests and raises AssertionError
        when one is answered wrongly."""
        self.server = server
        self._known_valid_answers = known_valid_answers
        self.rss_headroom_mb = rss_headroom_mb
        self.cases = 0
        self._log_read = 0
        for _ in range(WARM_UP_ROUNDS):
            self._known_valid_answers()
        self._new_log_text()  # start-up messages are not the fuzzer's doing
        self.baseline_mb = resident_mb(server.process.pid)
        self.peak_mb = self.baseline_mb
        WATCHED.append(self)

    @property
    def rss_bound_mb(self) -> float:
        return self.baseline_mb + self.rss_headroom_mb

    def after_case(self) -> None:
        self.cases += 1
        count_case()
        if self.server.process.poll() is not None:
            raise ServerFaultError(
                f"server exited ({self.server.process.returncode}):\n{self._tail()}"
            )
        if self.cases % BATCH == 0:
            self.check()

    def check(self) -> None:
        if self.server.process.poll() is not None:
            raise ServerFaultError(
                f"server exited ({self.server.process.returncode}):\n{self._tail()}"
            )
        self._known_valid_answers()
        faults = unexpected_tracebacks(self._new_log_text())
        if faults:
            raise ServerFaultError(
                f"server logged {len(faults)} unexpected traceback(s); the first:\n{faults[0]}"
            )
        resident = resident_mb(self.server.process.pid)
        self.peak_mb = max(self.peak_mb, resident)
        if resident > self.rss_bound_mb:
            raise ServerFaultError(
                f"server holds {resident:.0f} MB, over the bound of {self.rss_bound_mb:.0f} MB "
                f"({self.baseline_mb:.0f} MB after warm-up + {self.rss_headroom_mb:.0f} MB)"
            )

    def _new_log_text(self) -> str:
        text = self.server.log()
        new, self._log_read = text[self._log_read :], len(text)
        return new

    def _tail(self) -> str:
        return self.server.log()[-6000:]
