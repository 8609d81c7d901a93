"""What kubevino-serve does with each command-line flag and config.json field of OpenVINO Model
Server: one table that drives the start-up refusals, ``--help`` and README's parity section.

The rule it encodes: a name borrowed from Model Server means what it means there, or start-up
stops (exit 64, Model Server's usage-error code) saying why and what to do instead. Nothing is
accepted and then ignored.

The names come from Model Server's ``docs/parameters.md`` at two revisions — release 2026.2.1,
the last with the TensorFlow Serving API, and main — and, where the documentation lists less
than the server reads, from its config.json schema (``src/schema.cpp``) and command-line parser
(``src/cli_parser.cpp``) at the same revisions.

``python -m kubevino_runtime.parity README.md`` rewrites README's table from this one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final

# Model Server's exit status for a command line it will not run (sysexits' EX_USAGE).
EXIT_USAGE: Final = 64

RELEASE: Final = "2026.2.1"
MAIN: Final = "main"

README_START: Final = "<!-- parity-table:start (python -m kubevino_runtime.parity README.md) -->"
README_END: Final = "<!-- parity-table:end -->"


class UsageError(Exception):
    """A command line or config.json that kubevino-serve refuses to run (exit 64)."""


class Kind(Enum):
    FLAG = "flag"
    FIELD = "config.json"


class Status(Enum):
    HONOURED = "honoured"
    REFUSED = "refused"


class Where(Enum):
    """Where one Model Server revision has the name."""

    DOC = "doc"  # docs/parameters.md
    SCHEMA = "schema"  # config.json schema only (src/schema.cpp)
    PARSER = "parser"  # command-line parser only (src/cli_parser.cpp)
    ABSENT = "—"


@dataclass(frozen=True)
class Borrowed:
    """One flag or config.json field of Model Server.

    ``what``: for an honoured name, what kubevino-serve does with it (values it refuses
    included); for a refused one, why, worded to follow the name in the refusal.
    ``instead``: for a refused name, what to do instead; empty for an honoured one.
    """

    name: str
    kind: Kind
    in_release: Where
    in_main: Where
    status: Status
    what: str
    instead: str = ""

    @property
    def key(self) -> tuple[Kind, str]:
        return self.kind, self.name

    def refusal(self, subject: str | None = None) -> UsageError:
        """The start-up refusal for this name; ``subject`` names where it was found."""
        return refuse(subject or self.name, self.what, self.instead)


def refuse(subject: str, why: str, instead: str) -> UsageError:
    return UsageError(f"{subject} {why}; {instead}")


D, S, P, A = Where.DOC, Where.SCHEMA, Where.PARSER, Where.ABSENT
F, J = Kind.FLAG, Kind.FIELD
OK, NO = Status.HONOURED, Status.REFUSED
ENTRY: Final = "model_config_list[].config."

# Reasons shared by several refused names.
STATEFUL = (
    "configures stateful models (sequences), which kubevino-serve does not serve",
    "remove it, or serve stateful models with OpenVINO Model Server 2026.2 or older "
    "(Model Server 2026.3 removed them too)",
)
OTHER_GENERATIVE = (
    "sets an option of Model Server's image, speech or vision-language pipelines; "
    "kubevino-serve's --task serves text_generation, embeddings and rerank only",
    "serve such models with OpenVINO Model Server itself (openvino/model_server image)",
)


def _unimplemented(feature: str) -> tuple[str, str]:
    return (
        f"asks for {feature}, which kubevino-serve's text generation does not implement",
        "drop it, or serve the model with OpenVINO Model Server itself",
    )


PULL = (
    "belongs to Model Server's Hugging Face pull mode; kubevino-serve only serves files "
    "already in place",
    "put the model files in place first (InferenceModel spec.model.source, kubevino-fetch, "
    "or ovms --pull) and serve them with --model_path or --config_path",
)
CONFIG_EDIT = (
    "is one of Model Server's config.json editing commands; kubevino-serve only serves",
    "edit config.json directly (the operator renders it from the InferenceModel)",
)
MEDIA = (
    "sets where vision-language models may read images from; kubevino-serve serves none",
    "drop it, or serve vision-language models with OpenVINO Model Server itself",
)
DAG = (
    "configures Model Server's DAG pipelines and custom nodes, which kubevino-serve does not run",
    "serve the pipeline's models one by one and chain them in the client, or use OpenVINO "
    "Model Server itself",
)
MEDIAPIPE = (
    "configures MediaPipe graphs, which kubevino-serve does not run",
    "serve the graph's models one by one, or use OpenVINO Model Server itself",
)
CUSTOM_LOADER = (
    "configures a custom model loader library, which kubevino-serve does not load",
    "decrypt or convert the model into OpenVINO IR before serving it",
)
SCHEMA_ONLY_FLAG = (
    "is a command-line-only option in Model Server too: its config.json schema rejects this key",
    "use the command-line flag with --model_path and --model_name, or save the model with "
    "the step built in (OpenVINO's PrePostProcessor) and serve that",
)

_LAYOUT = (
    "client:model layouts (e.g. NHWC:NCHW) add a transposition with OpenVINO's "
    "PrePostProcessor, so clients send and receive the client layout and metadata reports its "
    "shape; a layout without a colon (e.g. N..., CN) only names the dimensions, which sets the "
    "batch dimension batch_size changes; a string applies to a model's only input, a JSON "
    "object maps input and output names to layouts"
)
_SHAPE = (
    "(1,3,224,224), -1 and min:max dimensions, or a JSON object per input: the model is "
    "reshaped before compiling; auto is refused (deprecated in Model Server): give -1 or a "
    "range"
)
_BATCH = (
    "a number, -1 or min:max sets the batch dimension (the layout's N, else the first); "
    "ignored with a warning when shape is given, as in Model Server; auto is refused "
    "(deprecated in Model Server): give -1 or a range"
)
_BASE_PATH = (
    "a directory of numbered version directories, relative paths taken from config.json's "
    "directory; a local model file (.xml, .onnx, ...) is served as version 1; gs://, s3:// "
    "and azure:// paths are refused: fetch the files first (InferenceModel spec.model.source, "
    "kubevino-fetch)"
)
_MODEL_PATH = (
    "a directory of numbered version directories; a local model file (.xml, .onnx, ...) is "
    "served as version 1; gs://, s3:// and azure:// paths are refused: fetch the files first "
    "(InferenceModel spec.model.source, kubevino-fetch)"
)
_TARGET = (
    "passed to OpenVINO as given; when not given, a discrete GPU (the one with most free "
    "memory), else an integrated GPU, else CPU, as Model Server since 2026.3 (2026.2 "
    "defaulted to CPU: give --target_device CPU for that)"
)
_NIREQ = "the infer-request pool size; 0 or not given: the compiled model's optimal number"
_POLICY = '{"latest": {"num_versions": N}}, {"specific": {"versions": [...]}} or {"all": {}}'
_PLUGIN = "OpenVINO properties passed to compile_model"
_METRICS_LIST = (
    "comma-separated metric families to expose instead of the default set; Model Server's "
    "names (ovms_infer_req_queue_size and ovms_infer_req_active are off unless listed) and "
    "kubevino_request_queue_depth, kubevino_batch_requests, kubevino_device_access and the "
    "generation families "
    "(README's Generative models); an unknown name is refused"
)

_TASK = (
    "text_generation, embeddings or rerank with --model_path (an OpenVINO GenAI model "
    "directory as optimum-cli exports it; for text_generation also a .gguf file, or a "
    "directory holding one) and "
    "--model_name: Model Server's OpenAI-compatible /v3 endpoints; image_generation, "
    "text2speech and speech2text are refused, as is --task with --config_path"
)
_PIPELINE_TYPE = (
    "AUTO (the default): continuous batching, LLMPipeline on NPU; LM: LLMPipeline, one "
    "request at a time; LM_CB: continuous batching; VLM and VLM_CB are refused"
)


def _bool(what: str, default: bool) -> str:
    return f"true or false: {what} (default {str(default).lower()})"


TABLE: Final[tuple[Borrowed, ...]] = (
    # --- command line: the model when there is no config.json ---------------------------------
    Borrowed("--model_name", F, D, D, OK, "the name clients use"),
    Borrowed("--model_path", F, D, D, OK, _MODEL_PATH),
    Borrowed("--batch_size", F, D, D, OK, _BATCH),
    Borrowed("--shape", F, D, D, OK, _SHAPE),
    Borrowed("--layout", F, D, D, OK, _LAYOUT),
    Borrowed(
        "--mean",
        F,
        D,
        D,
        OK,
        "a value or per-channel [..] subtracted from the input "
        "(OpenVINO's PrePostProcessor); needs --layout, as in Model Server",
    ),
    Borrowed(
        "--scale",
        F,
        D,
        D,
        OK,
        "a value or per-channel [..] the input is divided by "
        "(after mean); needs --layout, as in Model Server",
    ),
    Borrowed(
        "--color_format",
        F,
        D,
        D,
        NO,
        "asks for a colour conversion, which "
        "kubevino-serve does not implement (NV12 and I420 split an input into planes)",
        "convert colours in the client, or save the model with the conversion built in "
        "(OpenVINO's PrePostProcessor) and serve that",
    ),
    Borrowed(
        "--precision",
        F,
        D,
        D,
        OK,
        "client:model precisions (e.g. "
        "uint8:fp32): clients send the first, converted to the second before inference; "
        "needs --layout, as in Model Server",
    ),
    Borrowed("--model_version_policy", F, D, D, OK, _POLICY),
    Borrowed("--plugin_config", F, D, D, OK, _PLUGIN),
    Borrowed("--nireq", F, D, D, OK, _NIREQ),
    Borrowed("--target_device", F, D, D, OK, _TARGET),
    Borrowed("--stateful", F, D, A, NO, *STATEFUL),
    Borrowed("--idle_sequence_cleanup", F, D, A, NO, *STATEFUL),
    Borrowed("--max_sequence_number", F, D, A, NO, *STATEFUL),
    Borrowed("--low_latency_transformation", F, D, A, NO, *STATEFUL),
    Borrowed(
        "--metrics_enable",
        F,
        D,
        D,
        OK,
        "serves Prometheus /metrics on the REST port "
        "(off without it, as in Model Server); needs --rest_port",
    ),
    Borrowed("--metrics_list", F, D, D, OK, _METRICS_LIST + "; needs --metrics_enable"),
    Borrowed(
        "--config_path",
        F,
        D,
        D,
        OK,
        "Model Server's config.json, or a directory holding one; edits are applied while serving",
    ),
    # --- command line: the server -------------------------------------------------------------
    Borrowed(
        "--port",
        F,
        D,
        D,
        OK,
        "gRPC port, 0: no gRPC; kubevino-serve's default is "
        "9000 where Model Server's is 0 (the image's ports answer without flags)",
    ),
    Borrowed(
        "--rest_port",
        F,
        D,
        D,
        OK,
        "REST port, 0: no REST; kubevino-serve's default is "
        "8000 where Model Server's is 0; port and rest_port may not both be 0 or equal",
    ),
    Borrowed(
        "--grpc_bind_address",
        F,
        D,
        D,
        OK,
        "comma-separated addresses or host names the gRPC server listens on",
    ),
    Borrowed(
        "--rest_bind_address",
        F,
        D,
        D,
        OK,
        "comma-separated addresses or host names the REST server listens on",
    ),
    Borrowed(
        "--grpc_workers",
        F,
        D,
        D,
        OK,
        "1 (the default) is what kubevino-serve runs: "
        "one gRPC server; more is refused: one event loop serves them all, so extra "
        "gRPC servers would add nothing; --workers N runs N front-end processes instead",
    ),
    Borrowed(
        "--rest_workers",
        F,
        D,
        D,
        NO,
        "sets Model Server's REST thread pool; "
        "kubevino-serve's REST server runs on one event loop without such a pool",
        "use --workers N for N front-end processes sharing the ports",
    ),
    Borrowed(
        "--file_system_poll_wait_seconds",
        F,
        D,
        D,
        OK,
        "how often versions and "
        "config.json are checked for changes, 0: never (fractions are accepted too)",
    ),
    Borrowed(
        "--sequence_cleaner_poll_wait_minutes",
        F,
        D,
        A,
        OK,
        "every N minutes (default "
        "5, 0: never) freed heap memory is returned to the system (malloc_trim; with "
        "--workers, by the engine process and every front end), Model Server's other use "
        "of this interval; no sequences to clean, stateful models being refused",
    ),
    Borrowed(
        "--custom_node_resources_cleaner_interval_seconds",
        F,
        D,
        D,
        NO,
        "times the clean-up of custom node resources; kubevino-serve runs no custom nodes",
        "drop it (pipeline_config_list is refused too)",
    ),
    Borrowed(
        "--cpu_extension",
        F,
        D,
        D,
        OK,
        "the library is loaded into OpenVINO "
        "(Core.add_extension) before any model; a missing file is refused at start",
    ),
    Borrowed(
        "--log_level",
        F,
        D,
        D,
        OK,
        "TRACE, DEBUG, INFO, WARNING or ERROR (TRACE logs "
        "as DEBUG: nothing logs below it); any other value is refused",
    ),
    Borrowed("--log_path", F, D, D, OK, "log lines go to this file too (appended)"),
    Borrowed(
        "--cache_dir",
        F,
        D,
        D,
        OK,
        "OpenVINO's compiled-model cache; without it "
        "/opt/cache is used when that directory exists, as in Model Server",
    ),
    Borrowed(
        "--grpc_channel_arguments",
        F,
        D,
        D,
        OK,
        "comma-separated name=value gRPC "
        "server arguments (e.g. grpc.max_connection_age_ms=2000), integers passed as "
        "integers",
    ),
    Borrowed(
        "--grpc_max_threads",
        F,
        D,
        D,
        NO,
        "bounds Model Server's gRPC thread pool; "
        "kubevino-serve's gRPC server runs on one event loop without such a pool",
        "use --workers N for N front-end processes",
    ),
    Borrowed(
        "--grpc_memory_quota",
        F,
        D,
        D,
        NO,
        "sets a gRPC resource quota that Python's gRPC server does not offer",
        "bound memory with --max_request_bytes and --max_queue",
    ),
    Borrowed("--help", F, D, D, OK, "prints the flags and exits"),
    Borrowed("--version", F, D, D, OK, "prints kubevino-serve's and OpenVINO's versions and exits"),
    Borrowed(
        "--allow_credentials",
        F,
        D,
        D,
        OK,
        "adds Access-Control-Allow-Credentials: true to every REST response",
    ),
    Borrowed(
        "--allowed_headers",
        F,
        D,
        D,
        OK,
        "Access-Control-Allow-Headers of every REST "
        "response (default *); OPTIONS requests are answered",
    ),
    Borrowed(
        "--allowed_methods",
        F,
        D,
        D,
        OK,
        "Access-Control-Allow-Methods of every REST response (default *)",
    ),
    Borrowed(
        "--allowed_origins",
        F,
        D,
        D,
        OK,
        "Access-Control-Allow-Origin of every REST response (default *)",
    ),
    Borrowed(
        "--api_key_file",
        F,
        D,
        D,
        NO,
        "protects Model Server's /v3 endpoints with an API key, which kubevino-serve does not "
        "check (KServe and TF-Serving endpoints are unauthenticated in Model Server too)",
        "put an authenticating proxy or a NetworkPolicy in front of the server",
    ),
    Borrowed("--allowed_local_media_path", F, D, D, NO, *MEDIA),
    Borrowed("--allowed_media_domains", F, D, D, NO, *MEDIA),
    Borrowed("--verbose_response", F, A, D, NO, *_unimplemented("verbose generation responses")),
    # --- command line: config.json management, configure and pull modes ---------------------
    Borrowed("--list_models", F, D, D, NO, *CONFIG_EDIT),
    Borrowed("--add_to_config", F, D, D, NO, *CONFIG_EDIT),
    Borrowed("--remove_from_config", F, D, D, NO, *CONFIG_EDIT),
    Borrowed("--model_repository_path", F, D, D, NO, *PULL),
    Borrowed(
        "--configure",
        F,
        A,
        D,
        NO,
        "writes a generative model's graph.pbtxt; kubevino-serve needs no graph",
        "serve the model directly: --task with --model_path, --model_name and the settings flags",
    ),
    Borrowed("--pull", F, D, D, NO, *PULL),
    Borrowed("--source_model", F, D, D, NO, *PULL),
    Borrowed("--task", F, D, D, OK, _TASK),
    Borrowed("--overwrite_models", F, D, D, NO, *PULL),
    Borrowed(
        "--gguf_filename",
        F,
        D,
        D,
        OK,
        "with --task text_generation and --model_path DIR: the .gguf file in DIR to serve, as "
        "Model Server reads it with --task and --model_path (needed where DIR holds several; "
        "with one, kubevino-serve finds it); pulling it from Hugging Face is refused",
    ),
    Borrowed("--extra_quantization_params", F, D, D, NO, *PULL),
    Borrowed("--weight-format", F, D, D, NO, *PULL),
    Borrowed("--vocoder", F, D, A, NO, *OTHER_GENERATIVE),
    # --- command line: generative task options (after --task) ---------------------------------
    Borrowed("--pipeline_type", F, D, D, OK, _PIPELINE_TYPE),
    Borrowed(
        "--max_num_seqs",
        F,
        D,
        D,
        OK,
        "sequences one step of continuous batching holds (default 256)",
    ),
    Borrowed("--cache_size", F, D, D, OK, "KV cache size in GB; 0 (the default): grows as needed"),
    Borrowed(
        "--max_num_batched_tokens",
        F,
        D,
        D,
        OK,
        "tokens one step of continuous batching processes (default: GenAI's)",
    ),
    Borrowed(
        "--enable_prefix_caching",
        F,
        D,
        D,
        OK,
        _bool("reuses the KV cache of shared prompt prefixes", True),
    ),
    Borrowed(
        "--dynamic_split_fuse",
        F,
        D,
        D,
        OK,
        _bool("splits long prompts across steps, fused with generation", True),
    ),
    Borrowed(
        "--kv_cache_precision",
        F,
        D,
        D,
        OK,
        "u8 stores the KV cache in 8 bits; empty (the default): the device's precision",
    ),
    Borrowed(
        "--max_prompt_len",
        F,
        D,
        D,
        OK,
        "the longest prompt an NPU pipeline (LLMPipeline) is compiled for; refused where "
        "continuous batching serves, which needs no such bound",
    ),
    Borrowed(
        "--normalize", F, D, D, OK, _bool("L2-normalizes embeddings (--task embeddings)", True)
    ),
    Borrowed(
        "--pooling",
        F,
        D,
        D,
        OK,
        "CLS (the default), LAST or MEAN: how token states become an embedding (--task embeddings)",
    ),
    Borrowed(
        "--draft_source_model",
        F,
        D,
        D,
        NO,
        *_unimplemented("speculative decoding with a draft model"),
    ),
    Borrowed(
        "--model_distribution_policy",
        F,
        D,
        D,
        NO,
        *_unimplemented("tensor or pipeline parallelism across devices"),
    ),
    Borrowed("--reasoning_parser", F, D, D, NO, *_unimplemented("reasoning-content parsing")),
    Borrowed("--tool_parser", F, D, D, NO, *_unimplemented("tool-call parsing")),
    Borrowed("--enable_tool_guided_generation", F, D, D, NO, *_unimplemented("tool-call parsing")),
    Borrowed(
        "--cache_interval_multiplier", F, D, D, NO, *_unimplemented("a KV cache block interval")
    ),
    Borrowed(
        "--num_streams", F, D, D, NO, *_unimplemented("several execution streams per pipeline")
    ),
    Borrowed("--source_loras", F, D, D, NO, *_unimplemented("LoRA adapters")),
    Borrowed("--truncate", F, D, D, NO, *_unimplemented("truncation of long embedding inputs")),
    Borrowed(
        "--max_allowed_chunks", F, D, D, NO, *_unimplemented("chunking of long rerank documents")
    ),
    *(
        Borrowed(name, F, D, D, NO, *OTHER_GENERATIVE)
        for name in (
            "--resolution",
            "--max_resolution",
            "--default_resolution",
            "--max_num_images_per_prompt",
            "--num_images_per_prompt",
            "--guidance_scale",
            "--default_num_inference_steps",
            "--max_num_inference_steps",
        )
    ),
    Borrowed("--model_type", F, A, D, NO, *OTHER_GENERATIVE),
    # --- config.json ---------------------------------------------------------------------------
    Borrowed(
        "model_config_list",
        J,
        S,
        S,
        OK,
        "the models to serve, one config object each; "
        "a key Model Server's schema does not know is an error, as there",
    ),
    Borrowed(ENTRY + "name", J, D, D, OK, "the name clients use"),
    Borrowed(ENTRY + "base_path", J, D, D, OK, _BASE_PATH),
    Borrowed(ENTRY + "batch_size", J, D, D, OK, _BATCH),
    Borrowed(ENTRY + "shape", J, D, D, OK, _SHAPE),
    Borrowed(ENTRY + "layout", J, D, D, OK, _LAYOUT),
    Borrowed(ENTRY + "mean", J, D, D, NO, *SCHEMA_ONLY_FLAG),
    Borrowed(ENTRY + "scale", J, D, D, NO, *SCHEMA_ONLY_FLAG),
    Borrowed(
        ENTRY + "color_format",
        J,
        D,
        D,
        NO,
        SCHEMA_ONLY_FLAG[0],
        "convert colours in the client, or save the model with the conversion built in "
        "(OpenVINO's PrePostProcessor) and serve that",
    ),
    Borrowed(ENTRY + "precision", J, D, D, NO, *SCHEMA_ONLY_FLAG),
    Borrowed(ENTRY + "model_version_policy", J, D, D, OK, _POLICY),
    Borrowed(ENTRY + "plugin_config", J, D, D, OK, _PLUGIN),
    Borrowed(ENTRY + "nireq", J, D, D, OK, _NIREQ),
    Borrowed(ENTRY + "target_device", J, D, D, OK, _TARGET),
    Borrowed(
        ENTRY + "allow_cache",
        J,
        S,
        S,
        OK,
        "accepted with Model Server's meaning: it "
        "only lifts caching's exclusion of custom loaders and auto shapes, which "
        "kubevino-serve refuses, so every model is cached when a cache directory is set",
    ),
    Borrowed(ENTRY + "stateful", J, D, A, NO, *STATEFUL),
    Borrowed(ENTRY + "idle_sequence_cleanup", J, D, A, NO, *STATEFUL),
    Borrowed(ENTRY + "max_sequence_number", J, D, A, NO, *STATEFUL),
    Borrowed(ENTRY + "low_latency_transformation", J, D, A, NO, *STATEFUL),
    Borrowed(ENTRY + "custom_loader_options", J, S, S, NO, *CUSTOM_LOADER),
    Borrowed(ENTRY + "graph_path", J, S, S, NO, *MEDIAPIPE),
    Borrowed(ENTRY + "subconfig", J, S, S, NO, *MEDIAPIPE),
    Borrowed("custom_loader_config_list", J, S, S, NO, *CUSTOM_LOADER),
    Borrowed("pipeline_config_list", J, S, S, NO, *DAG),
    Borrowed("custom_node_library_config_list", J, S, S, NO, *DAG),
    Borrowed("mediapipe_config_list", J, S, S, NO, *MEDIAPIPE),
    Borrowed(
        "monitoring.metrics.enable",
        J,
        S,
        S,
        OK,
        "true serves /metrics like "
        "--metrics_enable; not together with --metrics_enable, as in Model Server",
    ),
    Borrowed(
        "monitoring.metrics.metrics_list",
        J,
        S,
        S,
        OK,
        "an array of family names, as --metrics_list",
    ),
)

BY_KEY: Final[dict[tuple[Kind, str], Borrowed]] = {row.key: row for row in TABLE}


def row(kind: Kind, name: str) -> Borrowed:
    return BY_KEY[(kind, name)]


def flag(name: str) -> Borrowed:
    return BY_KEY[(Kind.FLAG, name)]


def field(name: str) -> Borrowed:
    return BY_KEY[(Kind.FIELD, name)]


def refused_flags() -> list[Borrowed]:
    return [r for r in TABLE if r.kind is Kind.FLAG and r.status is Status.REFUSED]


def markdown_table() -> str:
    """README's table: one line per name, in the table's order."""
    lines = [
        f"| Name | Kind | Model Server {RELEASE} | Model Server {MAIN} | kubevino-serve |",
        "| --- | --- | --- | --- | --- |",
    ]
    for entry in TABLE:
        if entry.status is Status.HONOURED:
            verdict = f"honoured: {entry.what}"
        else:
            verdict = f"refused (exit 64): it {entry.what}. Instead: {entry.instead}"
        cells = (
            f"`{entry.name}`",
            entry.kind.value,
            entry.in_release.value,
            entry.in_main.value,
            verdict.replace("|", "\\|"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def readme_block() -> str:
    return f"{README_START}\n{markdown_table()}{README_END}"


def rewrite_readme(text: str) -> str:
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    return text[:start] + readme_block() + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kubevino_runtime.parity [README.md]``: print the table, or rewrite it in
    the given README between its markers."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stdout.write(markdown_table())
        return 0
    path = Path(args[0])
    path.write_text(rewrite_readme(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
