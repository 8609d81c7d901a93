"""kubevino-serve and OpenVINO Model Server: every borrowed flag and config.json field means what
it means in Model Server, or start-up stops with exit 64, the reason and what to do instead.

The table in ``kubevino_runtime.parity`` is the specification: README's section is generated
from it, every refused row is refused here, and every honoured row names the tests that show
its behaviour on the real server (tests/runtime) or, where no server is needed, here.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openvino as ov
import pytest

from kubevino_runtime import parity, server, startup
from kubevino_runtime.engine import GpuCandidate, choose_default_target
from kubevino_runtime.parity import EXIT_USAGE, Kind, Status
from kubevino_runtime.preprocessing import PreprocessingError, parse_layout_change
from tests.unit.builders import REPO

README = REPO / "README.md"
RUNTIME = "tests.runtime"
PARITY = f"{RUNTIME}.test_parity"
UNIT = "tests.unit.test_parity"
F, J = Kind.FLAG, Kind.FIELD
E = parity.ENTRY
CONFIG_FIELDS = f"{PARITY}::test_config_fields_set_shape_batch_pool_streams_device_and_versions"
MODEL_FLAGS = f"{PARITY}::test_model_flags_set_pool_streams_device_and_versions"
PREPROCESSING = (
    f"{PARITY}::test_layout_flag_with_mean_scale_and_precision_preprocesses_like_openvino"
)
GRPC_INFER = f"{RUNTIME}.test_protocols::test_tritonclient_grpc_infers_the_in_process_result"
REST_INFER = f"{RUNTIME}.test_protocols::test_tritonclient_http_infers_the_in_process_result"
CONFIG_RELOAD = (
    f"{RUNTIME}.test_lifecycle::test_config_file_serves_several_models_and_reloads_on_change"
)
CORS_DEFAULTS = f"{PARITY}::test_cors_headers_default_to_any_origin_without_credentials"
CORS_PREFLIGHT = f"{PARITY}::test_allowed_origins_methods_and_headers_answer_a_preflight"
MONITORING = f"{PARITY}::test_config_monitoring_enables_metrics_and_picks_up_edits"

GENERATIVE = f"{RUNTIME}.test_generative"
GENERATION_UNIT = "tests.unit.test_generative_settings"
GENERATIVE_SOURCES = f"{RUNTIME}.test_generative_sources"
SCHEDULER = (
    f"{GENERATIVE}::test_concurrent_requests_are_batched_not_queued",
    f"{GENERATION_UNIT}::test_text_generation_flags_become_genais_scheduler_config",
)

# Each honoured row, and the tests that show kubevino-serve doing what Model Server does.
HONOURED_BY: dict[tuple[Kind, str], tuple[str, ...]] = {
    (F, "--model_name"): (GRPC_INFER,),
    (F, "--model_path"): (
        GRPC_INFER,
        f"{PARITY}::test_a_model_file_as_model_path_is_served_as_version_one",
        f"{UNIT}::test_values_kubevino_serve_refuses_exit_64_with_the_alternative",
    ),
    (F, "--batch_size"): (
        f"{RUNTIME}.test_reshape::test_batch_size_reshapes_even_a_model_without_a_layout",
        f"{PARITY}::test_a_layout_without_colon_names_the_batch_dimension_batch_size_changes",
    ),
    (F, "--shape"): (
        f"{RUNTIME}.test_reshape::test_shape_in_model_server_syntax_reshapes_with_ranges",
    ),
    (F, "--layout"): (
        PREPROCESSING,
        f"{PARITY}::test_a_layout_without_colon_names_the_batch_dimension_batch_size_changes",
        f"{UNIT}::test_layouts_follow_model_servers_rules",
    ),
    (F, "--mean"): (PREPROCESSING,),
    (F, "--scale"): (PREPROCESSING,),
    (F, "--precision"): (PREPROCESSING,),
    (F, "--model_version_policy"): (MODEL_FLAGS,),
    (F, "--plugin_config"): (MODEL_FLAGS,),
    (F, "--nireq"): (MODEL_FLAGS,),
    (F, "--target_device"): (
        MODEL_FLAGS,
        f"{PARITY}::test_without_a_target_device_the_recommended_device_serves",
        f"{UNIT}::test_without_a_target_a_discrete_gpu_with_most_free_memory_is_chosen",
    ),
    (F, "--metrics_enable"): (
        f"{PARITY}::test_metrics_are_off_unless_enabled",
        f"{PARITY}::test_metrics_enable_serves_the_default_families_only",
    ),
    (F, "--metrics_list"): (f"{PARITY}::test_metrics_list_serves_the_listed_families_only",),
    (F, "--config_path"): (
        CONFIG_RELOAD,
        CONFIG_FIELDS,
    ),
    (F, "--port"): (GRPC_INFER,),
    (F, "--rest_port"): (REST_INFER,),
    (F, "--grpc_bind_address"): (f"{PARITY}::test_bind_addresses_take_a_comma_separated_list",),
    (F, "--rest_bind_address"): (f"{PARITY}::test_bind_addresses_take_a_comma_separated_list",),
    (F, "--grpc_workers"): (
        f"{PARITY}::test_bind_addresses_take_a_comma_separated_list",
        f"{UNIT}::test_values_kubevino_serve_refuses_exit_64_with_the_alternative",
    ),
    (F, "--file_system_poll_wait_seconds"): (
        f"{RUNTIME}.test_lifecycle::test_new_and_removed_versions_are_picked_up_without_a_restart",
    ),
    (F, "--sequence_cleaner_poll_wait_minutes"): (
        f"{UNIT}::test_the_sequence_cleaner_interval_returns_freed_heap_memory",
    ),
    (F, "--cpu_extension"): (
        f"{PARITY}::test_cpu_extension_is_handed_to_openvino",
        f"{UNIT}::test_model_servers_usage_errors_exit_64",
    ),
    (F, "--log_level"): (f"{PARITY}::test_log_level_chooses_what_is_logged",),
    (F, "--log_path"): (f"{PARITY}::test_log_path_receives_the_log_lines_too",),
    (F, "--cache_dir"): (
        f"{PARITY}::test_cache_dir_caches_every_model_allow_cache_false_included",
        f"{UNIT}::test_without_cache_dir_model_servers_cache_directory_is_used_when_it_exists",
    ),
    (F, "--grpc_channel_arguments"): (
        f"{PARITY}::test_grpc_channel_arguments_reach_the_grpc_server",
    ),
    (F, "--help"): (f"{UNIT}::test_help_lists_the_flags_and_exits_zero",),
    (F, "--version"): (f"{UNIT}::test_version_prints_kubevino_serves_and_openvinos_versions",),
    (F, "--allow_credentials"): (f"{PARITY}::test_allow_credentials_is_on_every_rest_response",),
    (F, "--allowed_headers"): (
        CORS_DEFAULTS,
        CORS_PREFLIGHT,
    ),
    (F, "--allowed_methods"): (
        CORS_DEFAULTS,
        CORS_PREFLIGHT,
    ),
    (F, "--allowed_origins"): (
        CORS_DEFAULTS,
        CORS_PREFLIGHT,
    ),
    (F, "--task"): (
        f"{GENERATIVE}::test_chat_completion_is_greedy_genai_on_the_chat_template",
        f"{GENERATIVE}::test_embeddings_are_genais_with_the_pooling_and_normalization_flags",
        f"{GENERATIVE}::test_rerank_orders_documents_as_genai_does",
        f"{GENERATION_UNIT}::test_generation_usage_errors",
    ),
    (F, "--pipeline_type"): (
        f"{GENERATIVE}::test_pipeline_type_lm_serves_with_llm_pipeline_the_same_greedy_text",
        f"{GENERATION_UNIT}::test_auto_batches_continuously_everywhere_but_npu",
    ),
    (F, "--max_num_seqs"): SCHEDULER,
    (F, "--cache_size"): SCHEDULER,
    (F, "--max_num_batched_tokens"): SCHEDULER,
    (F, "--enable_prefix_caching"): SCHEDULER,
    (F, "--dynamic_split_fuse"): SCHEDULER,
    (F, "--kv_cache_precision"): (
        f"{GENERATIVE}::test_kv_cache_precision_u8_serves_from_an_8_bit_cache",
    ),
    (F, "--max_prompt_len"): (f"{GENERATION_UNIT}::test_max_prompt_len_is_for_npu_pipelines_only",),
    (F, "--normalize"): (
        f"{GENERATIVE}::test_embeddings_are_genais_with_the_pooling_and_normalization_flags",
    ),
    (F, "--gguf_filename"): (
        f"{GENERATIVE_SOURCES}::test_a_bare_gguf_url_is_fetched_as_version_1_and_serves",
        f"{GENERATIVE_SOURCES}::test_a_directory_of_several_gguf_files_fails_start_naming_them",
        "tests.unit.test_generative_layout::test_several_gguf_files_need_the_one_named",
    ),
    (F, "--pooling"): (
        f"{GENERATIVE}::test_embeddings_are_genais_with_the_pooling_and_normalization_flags",
    ),
    (J, "model_config_list"): (
        CONFIG_RELOAD,
        f"{UNIT}::test_a_field_model_servers_schema_does_not_know_stops_start_up_with_1",
    ),
    (J, E + "name"): (CONFIG_FIELDS,),
    (J, E + "base_path"): (CONFIG_FIELDS,),
    (J, E + "batch_size"): (CONFIG_FIELDS,),
    (J, E + "shape"): (CONFIG_FIELDS,),
    (J, E + "layout"): (
        f"{PARITY}::test_config_layout_nhwc_nchw_takes_nhwc_requests_and_answers_as_the_model_on_nchw",
        f"{PARITY}::test_config_layout_object_names_an_input_and_transposes_an_output",
    ),
    (J, E + "model_version_policy"): (CONFIG_FIELDS,),
    (J, E + "plugin_config"): (CONFIG_FIELDS,),
    (J, E + "nireq"): (CONFIG_FIELDS,),
    (J, E + "target_device"): (CONFIG_FIELDS,),
    (J, E + "allow_cache"): (
        f"{PARITY}::test_cache_dir_caches_every_model_allow_cache_false_included",
    ),
    (J, "monitoring.metrics.enable"): (
        MONITORING,
        f"{UNIT}::test_metrics_from_both_the_flag_and_config_json_stop_start_up_with_1",
    ),
    (J, "monitoring.metrics.metrics_list"): (
        MONITORING,
        CONFIG_FIELDS,
    ),
}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """main() configures the root logger and writes a termination message: keep both here."""
    monkeypatch.setenv("KUBEVINO_TERMINATION_LOG", str(tmp_path / "termination-log"))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model directory with one version; refusals come before anything reads it."""
    (tmp_path / "m" / "1").mkdir(parents=True)
    return tmp_path / "m"


def _start(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = server.main(argv)
    return code, capsys.readouterr().err


def _refused_line(code: int, err: str, tmp_path: Path) -> str:
    """The one line a refusal writes, checked to be on stderr and in the termination message."""
    assert code == EXIT_USAGE, err
    termination = (tmp_path / "termination-log").read_text().strip()
    assert termination in err.splitlines()
    return termination


# --- the table and README ------------------------------------------------------------------------


def test_readme_has_the_table_generated_from_the_code() -> None:
    text = README.read_text(encoding="utf-8")
    assert parity.readme_block() in text, (
        "README's parity table drifted from kubevino_runtime/parity.py: run "
        "`.venv/bin/python -m kubevino_runtime.parity README.md`"
    )
    assert "## OpenVINO Model Server parity" in text


def test_each_name_is_once_in_the_table_and_each_refusal_says_what_to_do_instead() -> None:
    keys = [row.key for row in parity.TABLE]
    assert len(keys) == len(set(keys))
    for row in parity.TABLE:
        assert row.what, row.name
        assert bool(row.instead) is (row.status is Status.REFUSED), row.name
        assert (row.in_release, row.in_main) != (parity.Where.ABSENT, parity.Where.ABSENT)


def test_every_flag_kubevino_serve_parses_is_model_servers_or_its_own() -> None:
    parsed = {
        option
        for action in startup.build_parser()._actions
        for option in action.option_strings
        if option.startswith("--")
    }
    borrowed = {row.name for row in parity.TABLE if row.kind is Kind.FLAG}
    assert parsed == borrowed | set(startup.KUBEVINO_FLAGS)
    assert not borrowed & set(startup.KUBEVINO_FLAGS)


def test_every_honoured_row_names_the_tests_that_show_its_behaviour() -> None:
    honoured = {row.key for row in parity.TABLE if row.status is Status.HONOURED}
    assert set(HONOURED_BY) == honoured
    for key, tests in HONOURED_BY.items():
        assert tests, key
        for test in tests:
            module, function = test.split("::")
            assert function in _test_functions(module), test


def _test_functions(module: str) -> set[str]:
    """The test functions a module defines, read from its source: importing the runtime tests
    here would load tritonclient's copy of the KServe protos next to kubevino's."""
    tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


# --- refused rows --------------------------------------------------------------------------------


@pytest.mark.parametrize("row", parity.refused_flags(), ids=lambda row: row.name)
def test_a_refused_flag_stops_start_up_with_64_and_its_reason(
    row: parity.Borrowed, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _start(["--model_path", str(model_dir), "--model_name", "m", row.name], capsys)
    line = _refused_line(code, err, tmp_path)
    assert line == f"kubevino-serve cannot start: {row.name} {row.what}; {row.instead}"


@pytest.mark.parametrize(
    "given",
    [["--tool_parser", "hermes3"], ["--rest_workers=4"], ["--pull", "--source_model", "a/b"]],
)
def test_a_refused_flag_is_refused_whatever_value_follows(
    given: list[str], model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _start(["--model_path", str(model_dir), "--model_name", "m", *given], capsys)
    name = given[0].split("=")[0]
    assert _refused_line(code, err, tmp_path).startswith(f"kubevino-serve cannot start: {name} ")


REFUSED_FIELDS = [
    row for row in parity.TABLE if row.kind is Kind.FIELD and row.status is Status.REFUSED
]


@pytest.mark.parametrize("row", REFUSED_FIELDS, ids=lambda row: row.name)
def test_a_refused_config_field_stops_start_up_with_64_and_its_reason(
    row: parity.Borrowed, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry: dict[str, Any] = {"name": "m", "base_path": str(model_dir)}
    document: dict[str, Any] = {"model_config_list": [{"config": entry}]}
    if row.name.startswith(E):
        key = row.name.removeprefix(E)
        entry[key] = True
        where = f"model_config_list[0].config.{key}"
    else:
        document[row.name] = [{"config": {"name": "x"}}]
        where = row.name
    config = tmp_path / "config.json"
    config.write_text(json.dumps(document))
    code, err = _start(["--config_path", str(config)], capsys)
    line = _refused_line(code, err, tmp_path)
    assert line == f"kubevino-serve cannot start: {config}: {where} {row.what}; {row.instead}"


def test_an_empty_refused_list_asks_for_nothing_and_is_accepted(
    model_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    entry = {"config": {"name": "m", "base_path": str(model_dir)}}
    config.write_text(json.dumps({"model_config_list": [entry], "pipeline_config_list": []}))
    args = startup.parse_arguments(["--config_path", str(config)])
    assert [model.name for model in server.read_configs(args, ov.Core()).models] == ["m"]


# --- values and usage errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "line"),
    [
        (
            ["--shape", "auto"],
            "--shape auto asks for a reload at every new request shape, which kubevino-serve "
            "does not do (Model Server deprecated it); give the dimensions that vary as -1 or as "
            "a min:max range, e.g. (-1,3,224,224)",
        ),
        (
            ["--shape", '{"input": "auto"}'],
            "--shape auto asks for a reload at every new request shape",
        ),
        (["--batch_size", "auto"], "--batch_size auto asks for a reload at every new batch size"),
        (
            ["--grpc_workers", "4"],
            "--grpc_workers 4 asks for more gRPC servers; one event loop serves every connection "
            "here, so more gRPC servers in one process would serve nothing more; use --workers 4 "
            "for 4 server processes sharing the ports",
        ),
    ],
)
def test_values_kubevino_serve_refuses_exit_64_with_the_alternative(
    given: list[str],
    line: str,
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = _start(["--model_path", str(model_dir), "--model_name", "m", *given], capsys)
    assert _refused_line(code, err, tmp_path).startswith(f"kubevino-serve cannot start: {line}")


def test_a_cloud_model_path_is_refused_with_the_way_to_fetch_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _start(["--model_path", "s3://bucket/resnet", "--model_name", "m"], capsys)
    assert _refused_line(code, err, tmp_path) == (
        "kubevino-serve cannot start: --model_path s3://bucket/resnet is cloud storage, which "
        "kubevino-serve does not read; fetch the files first (InferenceModel spec.model.source, "
        "or kubevino-fetch) and give their local path"
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["--metrics"], "--metrics is not a flag of kubevino-serve or of OpenVINO Model Server"),
        (["--model_pat", "x"], "--model_pat is not a flag"),  # no abbreviations, as cxxopts
        (["--port", "many"], "argument --port: invalid int value: 'many'"),
        (["--config_path", "c.json"], "use --config_path, or --model_path with --model_name"),
        (["--port", "70000"], "--port must be from 0 to 65535"),
        (["--port", "0", "--rest_port", "0"], "--port and --rest_port cannot both be 0"),
        (["--port", "8000", "--rest_port", "8000"], "--port and --rest_port must differ"),
        (["--rest_bind_address", "no_such host"], "--rest_bind_address 'no_such host' is not"),
        (["--grpc_workers", "0"], "--grpc_workers must be from 1 to the"),
        (["--grpc_channel_arguments", "grpc.x"], "each argument is name=value, comma-separated"),
        (["--log_level", "VERBOSE"], "--log_level must be one of TRACE, DEBUG, INFO, WARNING"),
        (["--cpu_extension", "/no/such.so"], "--cpu_extension /no/such.so does not exist"),
        (["--metrics_list", "ovms_streams"], "--metrics_list needs --metrics_enable"),
        (["--metrics_enable", "--rest_port", "0"], "--metrics_enable needs --rest_port"),
        (
            ["--metrics_enable", "--metrics_list", "ovms_streams,ovms_nothing"],
            "--metrics_list: ovms_nothing is not a metric family; the families are",
        ),
        (["--mean", "0.5"], "--mean needs --layout, as in Model Server"),
        (["--nireq", "-1"], "--nireq must be 0 (the optimal number) or more"),
        (["--file_system_poll_wait_seconds", "-1"], "must be 0 (never) or more"),
        (["--max_dynamic_batch", "0"], "argument --max_dynamic_batch: must be 1 or more"),
        (["--max_dynamic_batch", "2000"], "--max_dynamic_batch must be auto or from 1 to 1024"),
        (["--max_dynamic_batch", "many"], "argument --max_dynamic_batch: invalid dynamic_batch"),
        (
            ["--max_dynamic_batch", "4", "--dynamic_batch_delay_us", "-5"],
            "--dynamic_batch_delay_us must be from 0 to 1000000",
        ),
        (
            ["--max_dynamic_batch", "1", "--dynamic_batch_delay_us", "500"],
            "--dynamic_batch_delay_us waits for a batch to fill, but --max_dynamic_batch 1 turns "
            "batching off: give --max_dynamic_batch 2 or more, or drop the delay",
        ),
        (
            ["--dynamic_batch_delay_us", "500"],
            "but --max_dynamic_batch auto may turn batching off: give --max_dynamic_batch 2 or",
        ),
        (
            ["--task", "text_generation", "--max_dynamic_batch", "4"],
            "--max_dynamic_batch joins tensor requests; with --task the pipeline batches "
            "continuously",
        ),
    ],
)
def test_model_servers_usage_errors_exit_64(
    given: list[str],
    message: str,
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = _start(["--model_path", str(model_dir), "--model_name", "m", *given], capsys)
    assert message in _refused_line(code, err, tmp_path)


def test_neither_a_config_nor_a_model_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _start(["--model_name", "m"], capsys)
    assert _refused_line(code, err, tmp_path) == (
        "kubevino-serve cannot start: give --model_path and --model_name, or --config_path"
    )


def test_model_flags_next_to_config_path_are_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _start(["--config_path", "c.json", "--layout", "NHWC:NCHW", "--nireq", "2"], capsys)
    assert _refused_line(code, err, tmp_path) == (
        "kubevino-serve cannot start: --layout, --nireq describe the one model of a command "
        "line without config.json; with --config_path, set them in config.json's "
        "model_config_list"
    )


def test_a_field_model_servers_schema_does_not_know_stops_start_up_with_1(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    entry = {"config": {"name": "m", "base_path": str(model_dir), "layuot": "NHWC:NCHW"}}
    config.write_text(json.dumps({"model_config_list": [entry]}))
    code, err = _start(["--config_path", str(config)], capsys)
    assert code == 1  # as Model Server: a config.json it cannot load
    assert "model_config_list[0].config.layuot is not a field of Model Server's config.json" in err


def test_metrics_from_both_the_flag_and_config_json_stop_start_up_with_1(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    document = {
        "model_config_list": [{"config": {"name": "m", "base_path": str(model_dir)}}],
        "monitoring": {"metrics": {"enable": True}},
    }
    config.write_text(json.dumps(document))
    code, err = _start(["--config_path", str(config), "--metrics_enable"], capsys)
    assert code == 1
    assert "metrics are set by --metrics_enable and by config.json's monitoring section" in err


# --- honoured rows shown without a server --------------------------------------------------------


def test_version_prints_kubevino_serves_and_openvinos_versions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        server.main(["--version"])
    assert exited.value.code == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("kubevino-serve ") and second.startswith("OpenVINO backend 20")


def test_help_lists_the_flags_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        server.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "--layout" in text and "--metrics_enable" in text and "--workers" in text
    assert "--stateful" not in text  # refused flags are listed in README, not offered here
    assert "exit 64" in " ".join(text.split())


def test_without_a_target_a_discrete_gpu_with_most_free_memory_is_chosen() -> None:
    integrated = GpuCandidate("GPU.0", discrete=False, free_bytes=8 << 30)
    small, large = (GpuCandidate(f"GPU.{i}", True, size << 30) for i, size in ((1, 4), (2, 12)))
    assert choose_default_target([integrated, small, large]) == "GPU.2"
    assert choose_default_target([integrated]) == "GPU.0"
    assert choose_default_target([]) == "CPU"


def test_the_sequence_cleaner_interval_returns_freed_heap_memory() -> None:
    slept: list[float] = []
    trims: list[int] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) > 3:
            raise asyncio.CancelledError

    trimmer = startup.HeapTrimmer(lambda: trims.append(1))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(startup.release_free_heap(5, trimmer, sleep))
    assert slept == [300.0] * 4 and len(trims) == 3
    libc = startup.HeapTrimmer.from_libc()
    assert libc is not None  # glibc here, as in the images: the interval does its work
    libc.trim()

    def minutes(*given: str, trimmer: startup.HeapTrimmer | None = libc) -> int:
        args = startup.parse_arguments(["--model_path", "m", "--model_name", "m", *given])
        return startup.heap_trim_minutes(args, trimmer)

    assert minutes() == 5  # Model Server's default
    assert minutes("--sequence_cleaner_poll_wait_minutes", "0") == 0
    assert minutes("--sequence_cleaner_poll_wait_minutes", "2") == 2
    assert minutes(trimmer=None) == 0  # no malloc_trim: the default has nothing to do
    with pytest.raises(parity.UsageError, match="malloc_trim, which this C library lacks"):
        minutes("--sequence_cleaner_poll_wait_minutes", "2", trimmer=None)


def test_without_cache_dir_model_servers_cache_directory_is_used_when_it_exists(
    tmp_path: Path,
) -> None:
    args = startup.parse_arguments(["--model_path", "m", "--model_name", "m"])
    assert startup.cache_dir(args, default=tmp_path) == str(tmp_path)
    assert startup.cache_dir(args, default=tmp_path / "absent") is None
    given = startup.parse_arguments(["--model_path", "m", "--model_name", "m", "--cache_dir", "c"])
    assert startup.cache_dir(given, default=tmp_path) == "c"


@pytest.mark.parametrize(
    ("text", "client", "model"),
    [
        ("NHWC:NCHW", "NHWC", "NCHW"),
        ("nhwc : nchw", "NHWC", "NCHW"),
        ("N...", "N...", "N..."),
        ("NC...", "NC...", "NC..."),
        ("CN", "CN", "CN"),
        ("N?C", "N?C", "N?C"),
        ("NHWC:", "NHWC", "NHWC"),  # Model Server reads a missing side as the other one
    ],
)
def test_layouts_follow_model_servers_rules(text: str, client: str, model: str) -> None:
    change = parse_layout_change(text)
    assert (change.client, change.model) == (client, model)


@pytest.mark.parametrize("text", ["NHWC:NCHW:N", "NXC", "NN", "N..C", "N......", ":", "N.C"])
def test_malformed_layouts_are_refused(text: str) -> None:
    with pytest.raises(PreprocessingError):
        parse_layout_change(text)
