"""The API's cross-field rules: refused by the models with the same message the API server
gives, and every CEL expression evaluates like its Python twin."""

from __future__ import annotations

from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kubevino_operator.api import (
    AllVersions,
    Autoscaling,
    DeviceSpec,
    DynamicBatching,
    EmbeddingsSpec,
    GenerationSpec,
    HostPathSource,
    HttpSource,
    ImageSource,
    InferenceModelSpec,
    LatestVersions,
    ModelSource,
    ModelSpec,
    ModelTask,
    PerformanceSpec,
    PvcSource,
    ResourceRequirements,
    S3Source,
    ServiceSpec,
    ServingSpec,
    SpecificVersions,
    TextGenerationSpec,
    VersionPolicy,
)
from kubevino_operator.celrules import ApiModel
from tests.unit.builders import model

_CEL = celpy.Environment()


def _cel_holds(expression: str, wire: dict[str, Any]) -> bool:
    program = _CEL.program(_CEL.compile(expression))
    return bool(program.evaluate({"self": json_to_cel(wire)}))


def _assert_twins_agree(instance: ApiModel) -> None:
    for rule in type(instance).cel_rules:
        assert _cel_holds(rule.cel, instance.wire()) == rule.holds(instance), rule.message


plugin_keys = st.sets(
    st.sampled_from(
        [
            "PERFORMANCE_HINT",
            "NUM_STREAMS",
            "MODEL_PRIORITY",
            "INFERENCE_PRECISION_HINT",
            "PERFORMANCE_HINT_NUM_REQUESTS",
            "CACHE_DIR",
            "ENABLE_CPU_PINNING",
        ]
    )
)


@given(
    hint=st.none() | st.sampled_from(["LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"]),
    streams=st.none() | st.integers(1, 4),
    priority=st.none() | st.just("HIGH"),
    precision=st.none() | st.just("f16"),
    requests=st.none() | st.integers(1, 8),
    shape=st.none() | st.just("(1,3,224,224)"),
    shapes=st.none() | st.just({"input": "auto"}),
    keys=st.none() | plugin_keys,
    batch=st.none() | st.integers(1, 4),
    batching=st.none() | st.tuples(st.integers(1, 8), st.none() | st.integers(0, 500)),
)
def test_performance_rules_agree_with_their_cel(
    hint: Any,
    streams: Any,
    priority: Any,
    precision: Any,
    requests: Any,
    shape: Any,
    shapes: Any,
    keys: Any,
    batch: Any,
    batching: Any,
) -> None:
    dynamic = (
        None
        if batching is None
        else DynamicBatching.model_construct(
            max_batch_size=batching[0], max_delay_microseconds=batching[1]
        )
    )
    if dynamic is not None:
        _assert_twins_agree(dynamic)
    _assert_twins_agree(
        PerformanceSpec.model_construct(
            hint=hint,
            num_streams=streams,
            model_priority=priority,
            inference_precision=precision,
            num_requests=requests,
            shape=shape,
            shapes=shapes,
            plugin_config=None if keys is None else dict.fromkeys(sorted(keys), "1"),
            batch_size=batch,
            dynamic_batching=dynamic,
        )
    )


TARGETS = [
    "CPU",
    "GPU",
    "AUTO",
    "AUTO:GPU,CPU",
    "MULTI:MYRIAD,CPU",
    "HDDL",
    "NVIDIA",
    "HETERO:GPU,CPU",
    "MYRIAD.1.2-ma2480",
    "BATCH:GPU(4)",
]


@given(
    target=st.sampled_from(TARGETS),
    hint=st.none() | st.sampled_from(["LATENCY", "CUMULATIVE_THROUGHPUT"]),
    runtime=st.sampled_from(["Auto", "Kubevino", "ModelServer"]),
)
def test_spec_rules_agree_with_their_cel(target: str, hint: Any, runtime: str) -> None:
    _assert_twins_agree(
        InferenceModelSpec.model_construct(
            model=ModelSpec(source=ModelSource(pvc=PvcSource(claim_name="m"))),
            device=DeviceSpec(target_device=target),
            performance=None if hint is None else PerformanceSpec(hint=hint),
            serving=ServingSpec(runtime=runtime),
        )
    )


SOURCES: dict[str, Any] = {
    "pvc": PvcSource(claim_name="m"),
    "http": HttpSource(url="https://x/"),
    "s3": S3Source(uri="s3://bucket/p"),
    "host_path": HostPathSource(path="/m"),
    "image": ImageSource(reference="r/m:1"),
}
POLICIES: dict[str, Any] = {
    "latest": LatestVersions(num_versions=2),
    "specific": SpecificVersions(versions=[1]),
    "all": AllVersions(),
}


@given(st.sets(st.sampled_from(sorted(SOURCES))))
def test_source_rules_agree_with_their_cel(chosen: set[str]) -> None:
    _assert_twins_agree(ModelSource.model_construct(**{name: SOURCES[name] for name in chosen}))


@given(st.sets(st.sampled_from(sorted(POLICIES))))
def test_version_policy_rules_agree_with_their_cel(chosen: set[str]) -> None:
    _assert_twins_agree(VersionPolicy.model_construct(**{name: POLICIES[name] for name in chosen}))


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 3), st.integers(1, 3))
def test_scaling_and_port_rules_agree_with_their_cel(
    low: int, high: int, rest: int, grpc: int
) -> None:
    _assert_twins_agree(Autoscaling.model_construct(min_replicas=low, max_replicas=high))
    _assert_twins_agree(
        ServiceSpec.model_construct(type="ClusterIP", rest_port=rest, grpc_port=grpc)
    )


@given(st.booleans(), st.none() | st.sets(st.sampled_from(["cpu", "memory"])))
def test_serving_rules_agree_with_their_cel(autoscale: bool, requested: Any) -> None:
    _assert_twins_agree(
        ServingSpec.model_construct(
            replicas=1,
            runtime="Auto",
            autoscaling=Autoscaling(max_replicas=3) if autoscale else None,
            resources=None
            if requested is None
            else ResourceRequirements(requests=dict.fromkeys(sorted(requested), "1")),
        )
    )


TEXT_SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "kv_cache_size_gb": st.just(2),
        "max_concurrent_sequences": st.just(8),
        "prefix_caching": st.booleans(),
        "max_prompt_length": st.just(1024),
        "min_response_length": st.just(128),
        "draft_model": st.just({"directory": "draft"}),
    },
)


@given(
    task=st.sampled_from(["Tensor", "TextGeneration", "Embeddings", "Rerank"]),
    target=st.sampled_from(["CPU", "NPU", "AUTO:NPU,CPU", "MULTI:GPU,CPU", "HDDL", "BATCH:GPU"]),
    text=st.none() | TEXT_SETTINGS,
    embeddings=st.booleans(),
    performance=st.sampled_from(
        [None, {"batch_size": 2}, {"plugin_config": {"MIN_RESPONSE_LEN": 1}}]
    ),
    runtime=st.sampled_from(["Auto", "Kubevino", "ModelServer"]),
)
def test_generation_rules_agree_with_their_cel(
    task: ModelTask,
    target: str,
    text: dict[str, Any] | None,
    embeddings: bool,
    performance: dict[str, Any] | None,
    runtime: str,
) -> None:
    text_spec = None if text is None else TextGenerationSpec.model_validate(text)
    generation = (
        None
        if text_spec is None and not embeddings
        else GenerationSpec(
            text_generation=text_spec, embeddings=EmbeddingsSpec() if embeddings else None
        )
    )
    _assert_twins_agree(
        InferenceModelSpec.model_construct(
            model=ModelSpec.model_construct(
                source=ModelSource(pvc=PvcSource(claim_name="m")), task=task
            ),
            device=DeviceSpec(target_device=target),
            generation=generation,
            performance=None if performance is None else PerformanceSpec(**performance),
            serving=ServingSpec(runtime=runtime),
        )
    )


@given(task=st.sampled_from(["Tensor", "Rerank"]), policy=st.booleans())
def test_model_rules_agree_with_their_cel(task: ModelTask, policy: bool) -> None:
    _assert_twins_agree(
        ModelSpec.model_construct(
            source=ModelSource(pvc=PvcSource(claim_name="m")),
            task=task,
            version_policy=VersionPolicy(all=AllVersions()) if policy else None,
            cache=None,
        )
    )


REJECTED = [
    ({"performance": {"hint": "LATENCY", "numStreams": 2}}, "must not be used together"),
    (
        {"performance": {"hint": "LATENCY", "pluginConfig": {"NUM_STREAMS": 2}}},
        "must not be used together",
    ),
    (
        {"performance": {"pluginConfig": {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": "4"}}},
        "must not be used together",
    ),
    (
        {"performance": {"hint": "LATENCY", "pluginConfig": {"PERFORMANCE_HINT": "LATENCY"}}},
        "not both",
    ),
    ({"performance": {"pluginConfig": {"CACHE_DIR": "/x"}}}, "use modelCache"),
    (
        {"performance": {"batchSize": 4, "dynamicBatching": {"maxBatchSize": 8}}},
        "dynamicBatching joins requests along a dynamic batch dimension, which batchSize fixes",
    ),
    (
        {"performance": {"dynamicBatching": {"maxBatchSize": 1, "maxDelayMicroseconds": 100}}},
        "maxBatchSize 1 turns batching off",
    ),
    ({"performance": {"dynamicBatching": {"maxBatchSize": 0}}}, "greater than or equal to 1"),
    (
        {"device": {"targetDevice": "GPU"}, "performance": {"hint": "CUMULATIVE_THROUGHPUT"}},
        "needs an AUTO or MULTI",
    ),
    (
        {"device": {"targetDevice": "MYRIAD"}, "serving": {"runtime": "Kubevino"}},
        "set serving.runtime",
    ),
    ({"device": {"targetDevice": "MULTI:"}}, "at position 6"),
    ({"serving": {"replicas": -1}}, "greater than or equal to 0"),
    ({"serving": {"autoscaling": {"minReplicas": 4, "maxReplicas": 2}}}, "must not exceed"),
    ({"serving": {"autoscaling": {"maxReplicas": 2}}}, "needs serving.resources.requests.cpu"),
    ({"serving": {"service": {"restPort": 9000, "grpcPort": 9000}}}, "must differ"),
    ({"model": {"source": {}}}, "exactly one of pvc, http, s3, hostPath, image"),
    ({"performance": {"shape": "1x3"}}, "should match pattern"),
    ({"serving": {"resources": {"limits": {"memory": "2 GB"}}}}, "is not a Kubernetes quantity"),
    ({"device": {"accelerators": ["tpu"]}}, "Input should be"),
]


@pytest.mark.parametrize(("spec", "fragment"), REJECTED)
def test_bad_specs_are_rejected_with_a_message_that_names_the_problem(
    spec: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model(**spec)
    assert fragment in str(caught.value)


def test_unknown_fields_are_refused_so_typos_do_not_pass_silently() -> None:
    with pytest.raises(ValidationError, match="targetDevic"):
        model(device={"targetDevic": "GPU"})


def test_version_policy_maps_to_model_server_form() -> None:
    assert VersionPolicy.model_validate({"latest": {"numVersions": 3}}).to_model_server() == {
        "latest": {"num_versions": 3}
    }
    assert VersionPolicy.model_validate({"all": {}}).to_model_server() == {"all": {}}
