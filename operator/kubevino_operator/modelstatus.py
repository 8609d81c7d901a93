"""Pure: the ``ModelLoaded`` condition — did the model reach the server, from where, and how?

Read from the source in the spec, what ``kubevino-fetch`` said in its termination message
(``ModelFetch=Fetched|Cached: …`` or ``ModelFetch=<Reason>: …``), the kubelet's mount warnings
and the server's own give-up message, so that a user never has to read init-container logs.
"""

from __future__ import annotations

from kubevino_operator.conditions import ConditionState
from kubevino_operator.modelsource import describe_source, is_fetched
from kubevino_operator.podhealth import PodProblem
from kubevino_operator.render import Rendered
from kubevino_operator.resolve import Refusal

MODEL_LOADED = "ModelLoaded"

_FIXES = {
    "Unauthorized": "check the credentials: the Secret named in spec.model.source.s3.secretRef "
    "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the URL's access rules",
    "NotFound": "check the URL, or the bucket and prefix, in spec.model.source",
    "ChecksumMismatch": "the file at the source changed or spec.model.source.*.sha256 is "
    "wrong: fix one of them",
    "NoSpace": "give the model volume more room (a larger cache PVC, or node ephemeral storage)",
    "Unreachable": "check that the pods can reach the endpoint (DNS, network policy, proxy)",
    "InvalidModel": "publish the model as version folders (or the files of one version), or "
    "an archive of them",
    "FetchFailed": "see the message; the source answered with an error",
}
# A generative model is one directory, not version folders.
_GENERATIVE_FIXES = {
    **_FIXES,
    "InvalidModel": "publish an OpenVINO GenAI model directory (as `optimum-cli export "
    "openvino` writes it) or, for TextGeneration, a .gguf file, or an archive of either",
}
# What kubevino-serve's start-up refusal of a generative model's files says (they name
# --model_path): the model, not the server, is what to fix.
_UNREADABLE_MODEL_MARK = "--model_path "


def _fetched_true(report: str) -> ConditionState:
    reason, _, message = report.removeprefix("ModelFetch=").partition(": ")
    return ConditionState("True", reason, message)


def model_loaded(
    rendered: Rendered | Refusal | None,
    pod_problem: PodProblem | None,
    fetch_report: str | None,
    serving: bool,
) -> ConditionState:
    """ModelLoaded for one reconcile; ``serving``: whether Ready would be True."""
    if not isinstance(rendered, Rendered):
        return ConditionState("Unknown", "NotRendered", "nothing runs: see Ready")
    source = describe_source(rendered.model)
    fetched = is_fetched(rendered.model)
    generative = rendered.model.spec.model.task != "Tensor"
    if pod_problem is not None and pod_problem.condition == MODEL_LOADED:
        fix = (_GENERATIVE_FIXES if generative else _FIXES).get(pod_problem.reason, "")
        return ConditionState(
            "False", pod_problem.reason, f"{source}: {pod_problem.message} Fix: {fix}."
        )
    if (
        pod_problem is not None
        and pod_problem.reason == "VolumeMountFailed"
        and ('volume "model' in pod_problem.message)
    ):
        return ConditionState("False", "VolumeMountFailed", f"{source}: {pod_problem.message}")
    if (
        pod_problem is not None
        and pod_problem.reason == "ServerCrashing"
        and "no version found" in pod_problem.message
    ):
        return ConditionState(
            "False",
            "NoVersion",
            f"{source} holds no version folder the server can read (Model Server's layout "
            f"<base>/<version>/): {pod_problem.message}",
        )
    if (
        generative
        and pod_problem is not None
        and pod_problem.reason == "ServerCrashing"
        and _UNREADABLE_MODEL_MARK in pod_problem.message
    ):
        return ConditionState(
            "False",
            "InvalidModel",
            f"{source} is not a model the server can read: {pod_problem.message} Fix: "
            f"{_GENERATIVE_FIXES['InvalidModel']}.",
        )
    if fetched and fetch_report:
        return _fetched_true(fetch_report)
    if serving:
        verb = "fetched from" if fetched else "mounted from"
        return ConditionState("True", "Loaded", f"the serving pods load the model {verb} {source}")
    if fetched:
        return ConditionState("Unknown", "Fetching", f"waiting for the model from {source}")
    return ConditionState("Unknown", "Pending", f"waiting for a pod to load {source}")
