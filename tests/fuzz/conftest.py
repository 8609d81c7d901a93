"""Fuzz tier fixtures: the models (made at test time), one real server per module, and the
sentinel that checks it between cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.fuzz.budget import cases_run, total_examples
from tests.fuzz.known_valid import Endpoints, every_protocol
from tests.fuzz.models import Reference, write_repository
from tests.fuzz.sentinel import WATCHED, Sentinel
from tests.runtime.serving import RunningServer, running_server

# Small enough that a hostile body costs little, large enough for every model's valid requests.
MAX_REQUEST_BYTES = 1024 * 1024


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.json of the fuzz models, every version of each served."""
    return write_repository(tmp_path_factory.mktemp("fuzz-models"))


@pytest.fixture(scope="session")
def reference(repository: Path) -> Reference:
    return Reference(repository.parent)


@pytest.fixture(scope="module")
def server(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(
        ["--config_path", str(repository), "--max_request_bytes", str(MAX_REQUEST_BYTES)],
        tmp_path_factory.mktemp("fuzz-server"),
    ) as running:
        running.wait_ready(timeout=120)
        yield running


@pytest.fixture(scope="module")
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        server.grpc,
        options=[
            ("grpc.max_send_message_length", 4 * MAX_REQUEST_BYTES),
            ("grpc.max_receive_message_length", 4 * MAX_REQUEST_BYTES),
        ],
    ) as opened:
        yield opened


@pytest.fixture(scope="module")
def endpoints(server: RunningServer, channel: grpc.Channel) -> Endpoints:
    return Endpoints(server.rest_port, channel)


@pytest.fixture(scope="module")
def sentinel(server: RunningServer, endpoints: Endpoints, reference: Reference) -> Sentinel:
    return Sentinel(server, lambda: every_protocol(endpoints, reference))


@pytest.fixture(autouse=True)
def _checked_after_each_test(sentinel: Sentinel) -> Iterator[None]:
    yield
    sentinel.check()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not cases_run():
        return
    terminalreporter.write_line(
        f"fuzz: {cases_run()} cases (KUBEVINO_FUZZ_EXAMPLES={total_examples()}); server RSS "
        "after warm-up -> peak (bound), MB: "
        + ", ".join(
            f"{watched.baseline_mb:.0f} -> {watched.peak_mb:.0f} ({watched.rss_bound_mb:.0f})"
            for watched in WATCHED
        )
    )
