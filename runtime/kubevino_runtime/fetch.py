"""``kubevino-fetch``: bring an HTTP(S) or S3 model into Model Server's layout, safely.

Runs as the model pods' init container (the runtime image, no second image). Whatever the
source, files land in a hidden staging directory beside the destination, are checked against
the optional SHA-256 map, and only then are the version folders renamed into place, one atomic
rename each, with a record written last: a partial download is never a served version. With a
shared cache (a PVC), a lock serializes the replicas: the first downloads, the others find the
record and skip the download.

The outcome goes to the termination message, which the operator reads into the
``ModelLoaded`` condition: ``ModelFetch=Fetched: …`` / ``ModelFetch=Cached: …`` on success,
``ModelFetch=<Reason>: …`` on failure (Unauthorized, NotFound, ChecksumMismatch, NoSpace,
Unreachable, InvalidModel, FetchFailed).

For a generative model (``--task``), the server reads version 1 as one OpenVINO GenAI directory
or GGUF file: a download that is neither for the task is InvalidModel here, with what it holds,
rather than a server that fails to load it later.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from kubevino_runtime.generative.layout import LayoutError, model_location
from kubevino_runtime.termination import write_termination_message

log = logging.getLogger("kubevino.fetch")
RECORD = ".kubevino-fetch.json"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
T = TypeVar("T")


class FetchError(Exception):
    """A fetch that failed for a reason the user can act on."""

    def __init__(self, reason: str, message: str, retriable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.retriable = retriable


@dataclass(frozen=True)
class Fetched:
    versions: tuple[str, ...]
    files: int
    size: int
    seconds: float
    cached: bool


# --- retries ----------------------------------------------------------------------------------


def with_retries(action: Callable[[], T], attempts: int, what: str, first_wait: float = 1.0) -> T:
    """Retry transient failures with exponential backoff (1, 2, 4 … s, at most 30 s)."""
    wait = first_wait
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except FetchError as error:
            if not error.retriable or attempt == attempts:
                raise
            log.warning(
                "%s failed (attempt %d/%d): %s; retrying in %.0f s",
                what,
                attempt,
                attempts,
                error,
                wait,
            )
            time.sleep(wait)
            wait = min(wait * 2, 30.0)
    raise AssertionError("unreachable")


def _space_error(error: OSError, where: Path) -> FetchError:
    free = shutil.disk_usage(where).free if where.exists() else 0
    return FetchError(
        "NoSpace",
        f"no space left on the volume at {where} ({free // 1_000_000} MB free): give the model "
        f"volume more room (emptyDir sizeLimit, a larger cache PVC) ({error.strerror})",
    )


# --- HTTP ---------------------------------------------------------------------------------------


def _http_download(url: str, target: Path, verify_tls: bool, attempts: int) -> None:
    import httpx

    def once() -> None:
        try:
            with (
                httpx.stream(
                    "GET", url, follow_redirects=True, verify=verify_tls, timeout=60.0
                ) as response,
                target.open("wb") as out,
            ):
                if response.status_code in (401, 403):
                    raise FetchError(
                        "Unauthorized",
                        f"GET {url} answered {response.status_code}: the server refuses access",
                    )
                if response.status_code == 404:
                    raise FetchError("NotFound", f"GET {url} answered 404: no such file")
                if response.status_code >= 400:
                    raise FetchError(
                        "FetchFailed" if response.status_code < 500 else "Unreachable",
                        f"GET {url} answered {response.status_code}",
                        retriable=response.status_code >= 500 or response.status_code == 429,
                    )
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
        except httpx.TransportError as error:
            raise FetchError(
                "Unreachable", f"GET {url} failed: {error or type(error).__name__}", True
            ) from None

    with_retries(once, attempts, f"GET {url}")


def _file_name(url: str) -> str:
    name = Path(unquote(urlparse(url).path)).name
    return name or "model"


def _plain_members(tarred: tarfile.TarFile, name: str, into: Path) -> list[tarfile.TarInfo]:
    """Files and folders that stay inside ``into``; links, devices and escapes are refused."""
    root = into.resolve()
    members = tarred.getmembers()
    for member in members:
        if not (member.isfile() or member.isdir()):
            raise FetchError("InvalidModel", f"{name}: {member.name} is not a file or a folder")
        if not (root / member.name).resolve().is_relative_to(root):
            raise FetchError("InvalidModel", f"{name}: {member.name} leaves the model tree")
        member.mode = 0o755 if member.isdir() else 0o644
    return members


def _unpack(archive: Path, into: Path) -> None:
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                for member in zipped.namelist():
                    resolved = (into / member).resolve()
                    if not resolved.is_relative_to(into.resolve()):
                        raise FetchError(
                            "InvalidModel", f"{archive.name}: {member} leaves the tree"
                        )
                zipped.extractall(into)
        else:
            with tarfile.open(archive) as tarred:
                members = _plain_members(tarred, archive.name, into)
                if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: the stdlib's own checks
                    tarred.extractall(into, members=members, filter="data")
                else:
                    tarred.extractall(into, members=members)
    except (tarfile.TarError, zipfile.BadZipFile) as error:
        raise FetchError(
            "InvalidModel", f"{archive.name} is not a valid archive: {error}"
        ) from None
    archive.unlink()


def fetch_http(url: str, staging: Path, verify_tls: bool, attempts: int) -> None:
    name = _file_name(url)
    downloaded = staging / name
    _http_download(url, downloaded, verify_tls, attempts)
    if name.lower().endswith(ARCHIVE_SUFFIXES):
        _unpack(downloaded, staging)


# --- S3 -----------------------------------------------------------------------------------------


_S3_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}


def _s3_error(error: Exception, uri: str) -> FetchError:
    """Why an S3 call failed, once botocore's own retries (sized by --retries) are spent."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    if isinstance(error, NoCredentialsError):
        return FetchError(
            "Unauthorized",
            f"{uri}: no credentials (set spec.model.source.s3.secretRef to a Secret with "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        )
    if isinstance(error, EndpointConnectionError):
        return FetchError("Unreachable", f"{uri}: cannot reach the endpoint: {error}")
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = str(info.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{uri}: {code or status}: {info.get('Message', '')}".rstrip(": ")
        if code in _S3_DENIED or status in (401, 403):
            return FetchError("Unauthorized", f"{text} (check the keys in the Secret)")
        if code in {"NoSuchBucket", "NoSuchKey", "404"} or status == 404:
            return FetchError("NotFound", text)
        return FetchError("FetchFailed", text)
    return FetchError("Unreachable", f"{uri}: {error}")


def fetch_s3(
    uri: str,
    staging: Path,
    endpoint: str | None,
    region: str | None,
    verify_tls: bool,
    attempts: int,
) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    # botocore retries connection errors, throttling and 5xx itself (standard mode, with
    # backoff): wrapping its calls in with_retries as well would multiply the attempts.
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region or "us-east-1",
        verify=verify_tls,
        config=Config(retries={"max_attempts": attempts, "mode": "standard"}),
    )
    try:
        listed: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            listed += [item["Key"] for item in page.get("Contents", [])]
    except (BotoCoreError, ClientError) as error:
        raise _s3_error(error, uri) from None
    keys = [key for key in listed if not key.endswith("/")]
    if not keys:
        raise FetchError("NotFound", f"{uri}: no objects under this prefix")
    for key in keys:
        relative = key[len(prefix) :]
        target = (staging / relative).resolve()
        if not target.is_relative_to(staging.resolve()):
            raise FetchError("InvalidModel", f"{uri}: object {key} leaves the model tree")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.download_file(bucket, key, str(target))
        except (BotoCoreError, ClientError) as error:
            raise _s3_error(error, f"s3://{bucket}/{key}") from None


# --- layout and checks --------------------------------------------------------------------------


def _visible(path: Path) -> list[Path]:
    return sorted(child for child in path.iterdir() if not child.name.startswith("."))


def normalize_layout(staging: Path) -> None:
    """Model Server's ``<version>/`` layout: a lone wrapping folder is unwrapped, and files with
    no version folder become version 1."""
    entries = _visible(staging)
    while len(entries) == 1 and entries[0].is_dir() and not entries[0].name.isdigit():
        wrapper = entries[0]
        hidden = staging / f".unwrap-{os.getpid()}"
        wrapper.rename(hidden)
        for child in _visible(hidden):
            child.rename(staging / child.name)
        shutil.rmtree(hidden)
        entries = _visible(staging)
    if not entries:
        raise FetchError("InvalidModel", "the source holds no files")
    if not any(entry.is_dir() and entry.name.isdigit() for entry in entries):
        version = staging / "1"
        version.mkdir()
        for entry in entries:
            entry.rename(version / entry.name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksums(root: Path, expected: dict[str, str]) -> None:
    for relative, want in sorted(expected.items()):
        path = root / relative
        if not path.is_file():
            raise FetchError(
                "ChecksumMismatch", f"{relative} has a sha256 in the spec but is not in the model"
            )
        got = _sha256(path)
        if got != want.lower():
            raise FetchError(
                "ChecksumMismatch", f"{relative}: sha256 {got}, the spec expects {want.lower()}"
            )


def _tree_size(root: Path) -> tuple[int, int]:
    files = [path for path in root.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def check_generative(
    root: Path, task: str, gguf_filename: str | None, source: str, finds_gguf: bool = True
) -> None:
    """Version 1 under ``root`` is what a generative server reads (``--model_path`` there):
    it must hold an OpenVINO GenAI model or a GGUF file that ``task`` serves (named, where the
    server does not find it: ``finds_gguf`` False)."""
    version = root / "1"
    if not version.is_dir():
        found = ", ".join(e.name for e in _visible(root) if e.name.isdigit()) or "none"
        raise FetchError(
            "InvalidModel",
            f"{source}: a generative model is served from version 1 (the files without "
            f"version folders land there), and the download has versions {found}",
        )
    try:
        model_location(
            version, task, gguf_filename, where=f"{source} (version 1)", finds_gguf=finds_gguf
        )
    except LayoutError as error:
        raise FetchError("InvalidModel", str(error)) from None


# --- the whole fetch ----------------------------------------------------------------------------


LOCK = ".kubevino-fetch.lock"


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """One fetch per destination at a time, also across pods sharing a cache volume."""
    with (dest / LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _record(dest: Path) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = json.loads((dest / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return found


def fetch(
    source: str,
    dest: Path,
    download: Callable[[Path], None],
    checksums: dict[str, str],
    check: Callable[[Path], None] | None = None,
) -> Fetched:
    """``check``: raises FetchError for a tree the server cannot serve (before it is kept, and
    again on a cached one, which another model's fetch of the same source may have filled)."""
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        record = _record(dest)
        if record is not None and record.get("source") == source:
            verify_checksums(dest, checksums)
            if check is not None:
                check(dest)
            return Fetched(
                tuple(record["versions"]),
                record["files"],
                record["bytes"],
                time.monotonic() - started,
                cached=True,
            )
        # Leftovers of an earlier, interrupted or different fetch are not served.
        for child in dest.iterdir():
            if child.name == LOCK:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        staging = dest / f".partial-{os.getpid()}"
        staging.mkdir()
        try:
            download(staging)
            normalize_layout(staging)
            verify_checksums(staging, checksums)
            if check is not None:
                check(staging)
            files, size = _tree_size(staging)
            versions = tuple(sorted(e.name for e in _visible(staging) if e.name.isdigit()))
            for entry in _visible(staging):
                entry.rename(dest / entry.name)
            elapsed = time.monotonic() - started
            written = {
                "source": source,
                "versions": list(versions),
                "files": files,
                "bytes": size,
                "seconds": round(elapsed, 3),
            }
            (dest / f"{RECORD}.new").write_text(json.dumps(written))
            (dest / f"{RECORD}.new").rename(dest / RECORD)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise _space_error(error, dest) from None
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Fetched(versions, files, size, elapsed, cached=False)


def _summary(source: str, fetched: Fetched) -> str:
    versions = ", ".join(fetched.versions)
    size = f"{fetched.files} files, {fetched.size / 1_000_000:.1f} MB"
    if fetched.cached:
        return (
            f"ModelFetch=Cached: {source}: versions {versions} ({size}) already in the shared "
            f"cache; nothing downloaded"
        )
    return f"ModelFetch=Fetched: {source}: versions {versions} ({size}) in {fetched.seconds:.1f} s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubevino-fetch",
        description="Fetch an HTTP(S) file or archive, or an S3 prefix, into Model Server's "
        "<version>/ layout; a partial download never becomes a version.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="http(s) URL of a model file or a .tar/.tar.gz/.tgz/.zip")
    where.add_argument("--s3-uri", help="s3://bucket/prefix holding the model")
    parser.add_argument("--dest", required=True, help="directory the server reads")
    parser.add_argument("--s3-endpoint", help="endpoint URL of an S3-compatible store")
    parser.add_argument("--s3-region", help="bucket region")
    parser.add_argument("--no-verify-tls", action="store_true", help="do not verify TLS")
    parser.add_argument("--sha256-file", help="JSON map: path in the model → expected sha256")
    parser.add_argument("--retries", type=int, default=5, help="attempts per request")
    parser.add_argument(
        "--task",
        choices=("text_generation", "embeddings", "rerank"),
        help="a generative model: version 1 must hold an OpenVINO GenAI model or (for "
        "text_generation) a .gguf file",
    )
    parser.add_argument("--gguf-filename", help="with --task: the .gguf file version 1 must hold")
    parser.add_argument(
        "--gguf-named-only",
        action="store_true",
        help="with --task: the server reads a .gguf file only where --gguf-filename names it "
        "(Model Server), so an unnamed one is InvalidModel",
    )
    parser.add_argument(
        "--make-dir",
        action="append",
        default=[],
        help="also create this directory (e.g. the compiled-model cache on the same volume)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.gguf_filename or args.gguf_named_only) and not args.task:
        parser.error("--gguf-filename and --gguf-named-only describe a generative model: --task")
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    source = args.url or args.s3_uri
    verify = not args.no_verify_tls
    try:
        checksums: dict[str, str] = (
            json.loads(Path(args.sha256_file).read_text()) if args.sha256_file else {}
        )

        def download(staging: Path) -> None:
            if args.url:
                fetch_http(args.url, staging, verify, args.retries)
            else:
                fetch_s3(
                    args.s3_uri, staging, args.s3_endpoint, args.s3_region, verify, args.retries
                )

        def check(root: Path) -> None:
            check_generative(root, args.task, args.gguf_filename, source, not args.gguf_named_only)

        fetched = fetch(source, Path(args.dest), download, checksums, check if args.task else None)
        for directory in args.make_dir:
            Path(directory).mkdir(parents=True, exist_ok=True)
    except FetchError as error:
        message = f"ModelFetch={error.reason}: {error}"
        log.error("%s", message)
        write_termination_message(message)
        return 1
    except Exception as error:
        log.exception("fetch failed")
        message = f"ModelFetch=FetchFailed: {source}: {type(error).__name__}: {error}"
        write_termination_message(message)
        return 1
    message = _summary(source, fetched)
    log.info("%s", message)
    write_termination_message(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
