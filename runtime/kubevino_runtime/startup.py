"""kubevino-serve's command line: Model Server's flags with Model Server's meaning, checked the
way Model Server checks them, and refused (exit 64) where kubevino-serve cannot honour them.

Every flag Model Server documents is known here: an honoured one is parsed, a refused one is
recognised only to be refused with its reason (``parity.TABLE``). A flag neither has is an
unknown flag, also exit 64, as in Model Server.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import ipaddress
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

from kubevino_runtime import __version__
from kubevino_runtime.batching import AUTOMATIC, AUTOMATIC_MAX_BATCH, BatchingSettings
from kubevino_runtime.generative.settings import (
    IR_MODEL_FLAGS,
    check_generation_flags,
    true_or_false,
)
from kubevino_runtime.metrics import UnknownFamilyError, families_from_list
from kubevino_runtime.parity import EXIT_USAGE, UsageError, flag, refuse, refused_flags

log = logging.getLogger("kubevino.server")

# Model Server's log levels, as Python's (nothing here logs below DEBUG).
LOG_LEVELS: Final = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
}
# Model Server caches compiled models here when the directory exists and no --cache_dir is given.
DEFAULT_CACHE_DIR: Final = Path("/opt/cache")
MAX_PORT: Final = 65535
# Flags that are kubevino-serve's own, not borrowed from Model Server.
KUBEVINO_FLAGS: Final = (
    "--max_queue",
    "--max_request_bytes",
    "--shutdown_grace_seconds",
    "--model_wait_seconds",
    "--workers",
    "--chat_template_file",
    "--max_dynamic_batch",
    "--dynamic_batch_delay_us",
)
MAX_DYNAMIC_BATCH: Final = 1024
MAX_BATCH_DELAY_US: Final = 1_000_000
# Model flags that describe the one model of a command line without config.json.
MODEL_FLAGS: Final = (*IR_MODEL_FLAGS, "target_device", "plugin_config")
_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; kubevino-serve --help lists the flags")


class _PrintVersions(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        import openvino as ov  # here only: a front end parses the flags without OpenVINO

        sys.stdout.write(f"kubevino-serve {__version__}\nOpenVINO backend {ov.get_version()}\n")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kubevino-serve",
        description="Serve OpenVINO models over KServe v2 (REST and gRPC) and TF-Serving REST "
        "with OpenVINO Model Server's flags and config.json.",
        epilog="Model Server flags kubevino-serve does not honour are refused at start (exit "
        "64) with the reason and what to do instead; README's 'OpenVINO Model Server parity' "
        "lists every flag and config.json field.",
        allow_abbrev=False,  # like Model Server: a shortened flag is an unknown flag
    )
    parser.add_argument("--version", action=_PrintVersions, nargs=0, help=flag("--version").what)
    one = parser.add_argument_group("one model (instead of --config_path)")
    one.add_argument("--model_name", help=flag("--model_name").what)
    one.add_argument("--model_path", help=flag("--model_path").what)
    one.add_argument("--target_device", help=flag("--target_device").what)
    one.add_argument("--plugin_config", help=flag("--plugin_config").what)
    one.add_argument("--nireq", type=int, help=flag("--nireq").what)
    one.add_argument("--batch_size", help=flag("--batch_size").what)
    one.add_argument("--shape", help=flag("--shape").what)
    one.add_argument("--layout", help=flag("--layout").what)
    one.add_argument("--mean", help=flag("--mean").what)
    one.add_argument("--scale", help=flag("--scale").what)
    one.add_argument("--precision", help=flag("--precision").what)
    one.add_argument("--model_version_policy", help=flag("--model_version_policy").what)
    parser.add_argument("--config_path", help=flag("--config_path").what)
    parser.add_argument("--port", type=int, default=9000, help=flag("--port").what)
    parser.add_argument("--rest_port", type=int, default=8000, help=flag("--rest_port").what)
    parser.add_argument(
        "--grpc_bind_address", default="0.0.0.0", help=flag("--grpc_bind_address").what
    )
    parser.add_argument(
        "--rest_bind_address", default="0.0.0.0", help=flag("--rest_bind_address").what
    )
    parser.add_argument("--grpc_workers", type=int, default=1, help=flag("--grpc_workers").what)
    parser.add_argument("--grpc_channel_arguments", help=flag("--grpc_channel_arguments").what)
    parser.add_argument("--cache_dir", help=flag("--cache_dir").what)
    parser.add_argument("--cpu_extension", help=flag("--cpu_extension").what)
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help=flag("--file_system_poll_wait_seconds").what,
    )
    parser.add_argument(
        "--sequence_cleaner_poll_wait_minutes",
        type=int,
        default=None,  # Model Server's 5, told apart from an explicit 5 (see heap_trim_minutes)
        help=flag("--sequence_cleaner_poll_wait_minutes").what,
    )
    parser.add_argument("--log_level", default="INFO", help=flag("--log_level").what)
    parser.add_argument("--log_path", help=flag("--log_path").what)
    parser.add_argument("--metrics_enable", action="store_true", help=flag("--metrics_enable").what)
    parser.add_argument("--metrics_list", help=flag("--metrics_list").what)
    parser.add_argument(
        "--allow_credentials", action="store_true", help=flag("--allow_credentials").what
    )
    parser.add_argument("--allowed_origins", default="*", help=flag("--allowed_origins").what)
    parser.add_argument("--allowed_methods", default="*", help=flag("--allowed_methods").what)
    parser.add_argument("--allowed_headers", default="*", help=flag("--allowed_headers").what)
    _add_generation_flags(parser)
    own = parser.add_argument_group("kubevino-serve's own")
    own.add_argument(
        "--max_queue",
        type=int,
        default=64,
        help="requests that may wait per model version before 503/UNAVAILABLE",
    )
    own.add_argument(
        "--max_request_bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="largest request body or message accepted",
    )
    own.add_argument(
        "--shutdown_grace_seconds",
        type=float,
        default=25.0,
        help="how long SIGTERM waits for in-flight requests",
    )
    own.add_argument(
        "--model_wait_seconds",
        type=float,
        help="exit (code 1, reason in the termination message) when a model is still missing "
        "or failed this long after start; default: wait for the files like Model Server",
    )
    own.add_argument(
        "--chat_template_file",
        help="with --task text_generation: a Jinja chat template used instead of the model's "
        "(Model Server reads one only from chat_template.jinja in the model directory, which "
        "kubevino-serve honours too; this flag names one anywhere, e.g. a mounted ConfigMap)",
    )
    own.add_argument(
        "--workers",
        type=positive_integer,
        default=1,
        help="front-end processes sharing the ports (SO_REUSEPORT) and feeding one engine "
        "process that holds the one compiled copy of every model; more than one lifts the "
        "single event loop's limit of about a thousand requests a second (default 1)",
    )
    own.add_argument(
        "--max_dynamic_batch",
        type=dynamic_batch,
        default="auto",
        help="join up to this many waiting requests' rows into one inference, for models "
        "whose inputs and outputs have a dynamic first (batch) dimension; 1 turns dynamic "
        f"batching off; auto (the default): {AUTOMATIC_MAX_BATCH} on CPU, off elsewhere",
    )
    own.add_argument(
        "--dynamic_batch_delay_us",
        type=int,
        default=0,
        help="how long an idle infer request waits for a batch to fill, in microseconds; 0 "
        "(the default) joins only requests that are already waiting, so a lone request never "
        "waits",
    )
    for refused in refused_flags():
        # Known only to be refused after parsing, whatever value follows it.
        parser.add_argument(
            refused.name,
            nargs="?",
            dest=refused_dest(refused.name),
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    return parser


def _add_generation_flags(parser: argparse.ArgumentParser) -> None:
    """Model Server's --task and the generation settings (each None unless given, so a flag
    given for the wrong task is told apart from its default)."""
    task = parser.add_argument_group("generative models (--task)")
    task.add_argument("--task", help=flag("--task").what)
    task.add_argument("--pipeline_type", help=flag("--pipeline_type").what)
    for name in ("--max_num_seqs", "--cache_size", "--max_num_batched_tokens", "--max_prompt_len"):
        task.add_argument(name, type=int, help=flag(name).what)
    for name in ("--enable_prefix_caching", "--dynamic_split_fuse", "--normalize"):
        task.add_argument(name, type=true_or_false, metavar="true|false", help=flag(name).what)
    task.add_argument("--kv_cache_precision", help=flag("--kv_cache_precision").what)
    task.add_argument("--pooling", help=flag("--pooling").what)
    task.add_argument("--gguf_filename", help=flag("--gguf_filename").what)


def refused_dest(name: str) -> str:
    return "refused_" + name.lstrip("-").replace("-", "_")


def dynamic_batch(text: str) -> str | int:
    """``auto``, or the most requests' rows one inference holds."""
    return text if text == "auto" else positive_integer(text)


def positive_integer(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line, or UsageError naming the first flag that cannot run."""
    args, unknown = build_parser().parse_known_args(list(argv))
    if unknown:
        raise UsageError(
            f"{unknown[0]} is not a flag of kubevino-serve or of OpenVINO Model Server; "
            "kubevino-serve --help lists the flags"
        )
    for refused in refused_flags():
        if hasattr(args, refused_dest(refused.name)):
            raise refused.refusal()
    validate_arguments(args)
    return args


def validate_arguments(args: argparse.Namespace) -> None:
    """The checks Model Server makes before it starts (its usage errors), and the values
    kubevino-serve refuses."""
    if args.config_path and (args.model_path or args.model_name):
        raise UsageError("use --config_path, or --model_path with --model_name, not both")
    if not args.config_path and not (args.model_path and args.model_name):
        raise UsageError("give --model_path and --model_name, or --config_path")
    given_model_flags = [f"--{name}" for name in MODEL_FLAGS if getattr(args, name) is not None]
    if args.config_path and given_model_flags:
        raise UsageError(
            f"{', '.join(given_model_flags)} describe the one model of a command line without "
            "config.json; with --config_path, set them in config.json's model_config_list"
        )
    for name in ("mean", "scale", "precision"):
        if getattr(args, name) is not None and args.layout is None:
            raise UsageError(f"--{name} needs --layout, as in Model Server")
    for name in ("port", "rest_port"):
        if not 0 <= getattr(args, name) <= MAX_PORT:
            raise UsageError(f"--{name} must be from 0 to {MAX_PORT}")
    if args.port == 0 and args.rest_port == 0:
        raise UsageError("--port and --rest_port cannot both be 0: nothing would serve")
    if args.port == args.rest_port:
        raise UsageError("--port and --rest_port must differ")
    for name in ("grpc_bind_address", "rest_bind_address"):
        for address in bind_addresses(getattr(args, name)):
            if not _is_host(address):
                raise UsageError(f"--{name} {address!r} is not an IP address or host name")
    _check_grpc_workers(args.grpc_workers)
    if args.grpc_channel_arguments is not None:
        grpc_channel_arguments(args.grpc_channel_arguments)
    if args.nireq is not None and args.nireq < 0:
        raise UsageError("--nireq must be 0 (the optimal number) or more")
    for name in ("file_system_poll_wait_seconds", "sequence_cleaner_poll_wait_minutes"):
        if (getattr(args, name) or 0) < 0:
            raise UsageError(f"--{name} must be 0 (never) or more")
    if args.log_level not in LOG_LEVELS:
        raise UsageError(f"--log_level must be one of {', '.join(LOG_LEVELS)}")
    if args.cpu_extension is not None and not Path(args.cpu_extension).exists():
        raise UsageError(f"--cpu_extension {args.cpu_extension} does not exist")
    if args.metrics_list is not None and not args.metrics_enable:
        raise UsageError("--metrics_list needs --metrics_enable, as in Model Server")
    if args.metrics_enable and args.rest_port == 0:
        raise UsageError("--metrics_enable needs --rest_port: metrics are served over REST")
    if args.metrics_list is not None:
        metrics_families_from_flag(args.metrics_list)
    _check_dynamic_batching(args)
    check_generation_flags(args)


def _check_dynamic_batching(args: argparse.Namespace) -> None:
    given = args.max_dynamic_batch
    if given != "auto" and given > MAX_DYNAMIC_BATCH:
        raise UsageError(f"--max_dynamic_batch must be auto or from 1 to {MAX_DYNAMIC_BATCH}")
    if not 0 <= args.dynamic_batch_delay_us <= MAX_BATCH_DELAY_US:
        raise UsageError(f"--dynamic_batch_delay_us must be from 0 to {MAX_BATCH_DELAY_US}")
    if args.dynamic_batch_delay_us and given in ("auto", 1):
        raise UsageError(
            f"--dynamic_batch_delay_us waits for a batch to fill, but --max_dynamic_batch "
            f"{given} {'may turn batching off' if given == 'auto' else 'turns batching off'}: "
            "give --max_dynamic_batch 2 or more, or drop the delay"
        )
    if args.task is not None and given not in ("auto", 1):
        raise UsageError(
            "--max_dynamic_batch joins tensor requests; with --task the pipeline batches "
            "continuously (--max_num_seqs, --max_num_batched_tokens): drop it"
        )


def batching_settings(args: argparse.Namespace) -> BatchingSettings:
    if args.max_dynamic_batch == "auto":
        return AUTOMATIC
    return BatchingSettings(args.max_dynamic_batch, args.dynamic_batch_delay_us)


def _check_grpc_workers(count: int) -> None:
    cores = os.cpu_count() or 1
    if count > 1:
        raise refuse(
            f"--grpc_workers {count}",
            "asks for more gRPC servers; one event loop serves every connection here, so more "
            "gRPC servers in one process would serve nothing more",
            f"use --workers {count} for {count} server processes sharing the ports",
        )
    if not 1 <= count <= cores:
        raise UsageError(f"--grpc_workers must be from 1 to the {cores} CPU cores")


def bind_addresses(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()] or [text]


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_HOSTNAME.match(text)) and not text.replace(".", "").isdigit()
    return True


def grpc_channel_arguments(text: str) -> dict[str, int | str]:
    """``name=value,...`` as gRPC server options: integers as integers, like Model Server."""
    options: dict[str, int | str] = {}
    for item in text.split(","):
        name, equals, value = (part.strip() for part in item.partition("="))
        if not equals or not name or "=" in value:
            raise UsageError(
                f"--grpc_channel_arguments {text!r}: each argument is name=value, comma-separated"
            )
        try:
            options[name] = int(value)
        except ValueError:
            options[name] = value
    return options


def metrics_families_from_flag(text: str) -> frozenset[str]:
    try:
        return families_from_list([name.strip() for name in text.split(",") if name.strip()])
    except UnknownFamilyError as error:
        raise UsageError(f"--metrics_list: {error}") from None


def cache_dir(args: argparse.Namespace, default: Path = DEFAULT_CACHE_DIR) -> str | None:
    """--cache_dir, else Model Server's default cache directory when it exists."""
    if args.cache_dir:
        return str(args.cache_dir)
    return str(default) if default.is_dir() else None


def configure_logging(args: argparse.Namespace, worker_suffix: str) -> None:
    """Log lines on stderr and, with --log_path, appended to that file too."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if args.log_path:
        try:
            handlers.append(logging.FileHandler(args.log_path, mode="a", encoding="utf-8"))
        except OSError as error:
            raise UsageError(f"--log_path {args.log_path}: {error.strerror}") from None
    logging.basicConfig(
        level=LOG_LEVELS[args.log_level],
        format=f"%(asctime)s %(levelname)s %(name)s{worker_suffix}: %(message)s",
        handlers=handlers,
        force=True,
    )


def cannot_start(message: str, write_termination: Callable[[str], None]) -> int:
    """Model Server prints its usage errors plainly; so does kubevino-serve, and it writes the
    same line where Kubernetes shows it (the termination message)."""
    line = f"kubevino-serve cannot start: {message}"
    sys.stderr.write(line + "\n")
    write_termination(line)
    return EXIT_USAGE


DEFAULT_HEAP_TRIM_MINUTES: Final = 5


def heap_trim_minutes(args: argparse.Namespace, trimmer: HeapTrimmer | None) -> int:
    """How often freed heap memory is returned (0: never). Without malloc_trim (a C library
    other than glibc) an explicit interval is refused; the default one has nothing to do."""
    given = args.sequence_cleaner_poll_wait_minutes
    if trimmer is None:
        if given:
            raise UsageError(
                "--sequence_cleaner_poll_wait_minutes returns freed heap memory with glibc's "
                "malloc_trim, which this C library lacks; drop it or give 0"
            )
        return 0
    return DEFAULT_HEAP_TRIM_MINUTES if given is None else int(given)


@dataclass(frozen=True)
class HeapTrimmer:
    """glibc's malloc_trim, which hands freed heap memory back to the system."""

    trim: Callable[[], None]

    @classmethod
    def from_libc(cls) -> HeapTrimmer | None:
        name = ctypes.util.find_library("c")
        library = ctypes.CDLL(name) if name else None
        malloc_trim = getattr(library, "malloc_trim", None)
        if malloc_trim is None:
            return None
        return cls(lambda: malloc_trim(0))


_M_ARENA_MAX: Final = -8  # glibc's mallopt parameter


def one_malloc_arena() -> None:
    """Have every thread of this process allocate from glibc's main arena. A front end's
    gRPC threads (its event engine's pool) would otherwise each make an arena and keep what
    they freed there, ≈1 MiB per front end (bench/runtime_memory.py); its Python thread holds
    the GIL for most of its work, so they seldom contend for the lock. Call before the threads
    start; nothing where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, 1)


async def release_free_heap(
    minutes: float,
    trimmer: HeapTrimmer,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Model Server's sequence cleaner also returns freed heap memory to the system at its
    interval; with no sequences here, that is all it does."""
    while True:
        await sleep(minutes * 60)
        await asyncio.to_thread(trimmer.trim)
        log.debug("returned freed heap memory to the system (malloc_trim)")
