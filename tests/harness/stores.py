"""Model stores a test starts and stops itself: a plain HTTP file server and MinIO (S3).

Both listen only where the test says (loopback, or an address inside the test's network
namespace) and are stopped by their own process handle.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from kubevino_devcluster.controlplane import kube_binaries
from kubevino_devcluster.processes import stop_process

MINIO_USER = "kubevino-test"
MINIO_PASSWORD = "kubevino-test-secret"


def model_archive(model_dir: Path, archive: Path) -> Path:
    """A .tar.gz of a model in Model Server's layout, as users publish one."""
    with tarfile.open(archive, "w:gz") as tarred:
        for version in sorted(model_dir.iterdir()):
            tarred.add(version, arcname=version.name)
    return archive


# The file server: python's http.server, with a request log the tests read back.
_FILE_SERVER = """
import http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        sys.stdout.write("%s %s\\n" % (self.command, self.path)); sys.stdout.flush()
http.server.ThreadingHTTPServer.allow_reuse_address = True
server = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
print("serving", flush=True)
server.serve_forever()
"""


@dataclass
class FileServer:
    url: str
    log_path: Path

    def requests(self) -> list[str]:
        lines = self.log_path.read_text().splitlines()
        return [line for line in lines if line.startswith(("GET", "HEAD"))]


def _wait(check: object, timeout: float, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}")
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} did not start in {timeout} s")


@contextmanager
def file_server(root: Path, host: str, port: int, log_dir: Path) -> Iterator[FileServer]:
    log_path = log_dir / f"http-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _FILE_SERVER, host, str(port)],
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://{host}:{port}"
    try:
        _wait(lambda: httpx.get(url + "/", timeout=2).status_code == 200, 30, "http.server",
              process)  # fmt: skip
        yield FileServer(url, log_path)
    finally:
        stop_process(process, 10)


@dataclass
class Minio:
    endpoint: str
    user: str = MINIO_USER
    password: str = MINIO_PASSWORD

    def client(self, secret: str | None = None) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.user,
            aws_secret_access_key=secret or self.password,
            region_name="us-east-1",
        )

    def upload_tree(self, bucket: str, prefix: str, tree: Path) -> None:
        client = self.client()
        client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                key = f"{prefix.strip('/')}/{path.relative_to(tree)}"
                client.upload_file(str(path), bucket, key)  # type: ignore[attr-defined]


@contextmanager
def minio_server(data: Path, host: str, port: int, log_dir: Path) -> Iterator[Minio]:
    """MinIO's real server (built from the Go module proxy by scripts/kube-bins.sh)."""
    binary = kube_binaries() / "minio"
    data.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "MINIO_ROOT_USER": MINIO_USER,
        "MINIO_ROOT_PASSWORD": MINIO_PASSWORD,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        "HOME": str(data),
    }
    log_path = log_dir / f"minio-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "server", str(data), "--address", f"{host}:{port}", "--quiet"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://{host}:{port}"
    try:
        _wait(
            lambda: httpx.get(f"{endpoint}/minio/health/live", timeout=2).status_code == 200,
            60,
            "minio",
            process,
        )
        yield Minio(endpoint)
    finally:
        stop_process(process, 20)
