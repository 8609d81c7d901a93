"""Pure: the InferenceModel status that tells the truth about its Deployment.

Conditions follow Kubernetes conventions and kstatus: ``Ready`` (it serves: every desired pod is
available and the Deployment has observed our latest template; once Ready, it stays so while
the PodDisruptionBudget's one pod is away, as in a node drain), ``Progressing`` (a rollout or
scale is under way), ``Degraded`` (stuck: refused, invalid, or the rollout failed),
``DeviceAccess`` (whether the pods can use their devices; Ready is never True while it is False),
``ModelLoaded`` (the model reached the server: from where, which versions, how long the fetch
took, or why not) and kstatus's twins ``Reconciling`` and ``Stalled``. A condition's
``lastTransitionTime`` moves only when its status changes, so an unchanged world gives a
byte-identical status and the operator writes nothing.

A ResourceClaim-mode model's ``devices`` name the device each pod's claims were allocated
(driver, pool, device), as the scheduler wrote them into the claims.

A generative model's ``pipeline`` says which GenAI pipeline serves it, the device it was
compiled for and the model's context length: as its kubevino-serve pods report them, or, on
the ModelServer runtime (which publishes none of it) and until a pod has answered, what the
rendered command line makes the runtime build, without the context length.
"""

from __future__ import annotations

from typing import Any

from kubevino_operator.api import SERVER_TASK, InferenceModel, static_pipeline
from kubevino_operator.conditions import ConditionState
from kubevino_operator.devicestatus import DEVICE_ACCESS, device_access_state
from kubevino_operator.modelstatus import MODEL_LOADED, model_loaded
from kubevino_operator.podhealth import PodProblem
from kubevino_operator.render import Rendered
from kubevino_operator.resolve import Refusal
from kubevino_operator.settings import Settings

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
# kstatus's abnormal-true pair (Flux, kubectl wait, cli-utils): Reconciling mirrors Progressing,
# Stalled mirrors Degraded, so a refused model reads as Failed rather than forever InProgress.
RECONCILING = "Reconciling"
STALLED = "Stalled"


def _condition(
    kind: str,
    state: ConditionState,
    generation: int | None,
    previous: list[dict[str, Any]],
    now: str,
) -> dict[str, Any]:
    before = next((c for c in previous if c.get("type") == kind), None)
    changed = before is None or before.get("status") != state.status
    condition: dict[str, Any] = {
        "type": kind,
        "status": state.status,
        "reason": state.reason,
        "message": state.message,
        "lastTransitionTime": now if changed else before["lastTransitionTime"],  # type: ignore[index]
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def _conditions(
    states: dict[str, ConditionState],
    generation: int | None,
    previous: list[dict[str, Any]],
    now: str,
) -> list[dict[str, Any]]:
    return [_condition(kind, state, generation, previous, now) for kind, state in states.items()]


def _deployment_condition(deployment: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (deployment.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


# Pods of a model with two or more replicas that a voluntary disruption may take at once: the
# rendered PodDisruptionBudget's maxUnavailable.
DISRUPTION_BUDGET = 1


def _was_serving(previous: list[dict[str, Any]], generation: int | None) -> bool:
    """Ready was True for this very spec in the status being replaced."""
    ready = next((c for c in previous if c.get("type") == READY), None)
    return (
        ready is not None
        and ready.get("status") == "True"
        and ready.get("observedGeneration") == generation
    )


def rollout_states(
    deployment: dict[str, Any] | None, template_generation_current: bool, was_serving: bool = False
) -> dict[str, ConditionState]:
    """Ready / Progressing / Degraded read off the Deployment. ``was_serving``: Ready was True
    for this spec before, so a pod the disruption budget lets go (a drain, an eviction) does
    not take Ready away while it is replaced; a new spec or rollout needs every pod again."""
    if deployment is None:
        waiting = ConditionState("False", "DeploymentMissing", "the Deployment is being created")
        return {
            READY: waiting,
            PROGRESSING: ConditionState("True", "Creating", "creating the Deployment"),
            DEGRADED: ConditionState("False", "AsExpected", ""),
        }
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    observed = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    progress = _deployment_condition(deployment, "Progressing")
    failure = _deployment_condition(deployment, "ReplicaFailure")
    stuck = progress.get("reason") == "ProgressDeadlineExceeded"
    rolled_out = (
        template_generation_current
        and observed
        and updated >= desired
        and available >= desired
        and total == desired
    )
    # Every pod runs the current template (no rollout), and at most the budget is away.
    disrupted = (
        was_serving
        and not rolled_out
        and not stuck
        and template_generation_current
        and observed
        and desired > DISRUPTION_BUDGET
        and updated >= total
        and available >= desired - DISRUPTION_BUDGET
    )
    degraded = ConditionState("False", "AsExpected", "")
    if stuck:
        degraded = ConditionState(
            "True", "ProgressDeadlineExceeded", progress.get("message", "the rollout is stuck")
        )
    elif failure.get("status") == "True":
        degraded = ConditionState(
            "True", failure.get("reason", "ReplicaFailure"), failure.get("message", "")
        )
    if desired == 0:
        ready = ConditionState("False", "ScaledToZero", "no pod runs: replicas is 0")
    elif rolled_out:
        ready = ConditionState("True", "Serving", f"{available}/{desired} pods serve the model")
    elif disrupted:
        ready = ConditionState(
            "True",
            "Serving",
            f"{available}/{desired} pods serve the model while the rest are replaced (the "
            f"PodDisruptionBudget lets {DISRUPTION_BUDGET} go at a time)",
        )
    else:
        ready = ConditionState(
            "False", "RollingOut", f"{available}/{desired} pods serve; {updated} updated"
        )
    progressing = (
        ConditionState("False", "RolledOut", "the latest spec is rolled out")
        if rolled_out or (desired == 0 and observed)
        else ConditionState("True", "RollingOut", f"{updated}/{desired} pods updated")
    )
    if disrupted:
        progressing = ConditionState(
            "True", "RollingOut", f"{available}/{desired} pods available; replacing the rest"
        )
    if stuck:
        progressing = ConditionState("False", "ProgressDeadlineExceeded", degraded.message)
    return {READY: ready, PROGRESSING: progressing, DEGRADED: degraded}


def refused_states(reason: str, message: str) -> dict[str, ConditionState]:
    state = ConditionState("False", reason, message)
    return {
        READY: state,
        PROGRESSING: ConditionState("False", reason, "waiting for the spec or settings to change"),
        DEGRADED: ConditionState("True", reason, message),
    }


# The GenAI pipeline each generative task is served by (text generation: where continuous
# batching runs; the runtimes' AUTO pipeline type, which the render leaves them).
_ENCODER_PIPELINES = {"Embeddings": "TextEmbeddingPipeline", "Rerank": "TextRerankPipeline"}


def rendered_pipeline(model: InferenceModel) -> str:
    task = model.spec.model.task
    if task == "TextGeneration":
        target = model.spec.device.target_device
        return "LLMPipeline" if static_pipeline(target) else "ContinuousBatchingPipeline"
    return _ENCODER_PIPELINES[task]


def _reported_pipeline(model: InferenceModel, report: dict[str, Any]) -> dict[str, Any] | None:
    """A pod's report as the status field, if it is a loaded pipeline of this model's task."""
    name, device, length = report.get("pipeline"), report.get("device"), report.get("contextLength")
    if (
        report.get("state") != "Loaded"
        or report.get("task") != SERVER_TASK.get(model.spec.model.task)
        or not isinstance(name, str)
        or not isinstance(device, str)
    ):
        return None
    status: dict[str, Any] = {"name": name, "device": device, "reportedBy": "Pod"}
    if isinstance(length, int) and not isinstance(length, bool) and length >= 0:
        status["contextLength"] = length
    return status


def pipeline_status(
    rendered: Rendered, pipeline_report: dict[str, Any] | None
) -> dict[str, Any] | None:
    """status.pipeline: a serving pod's report (``/kubevino/diagnostics``' generative
    section), else what the render implies; None for a Tensor model."""
    model = rendered.model
    if model.spec.model.task == "Tensor":
        return None
    if pipeline_report is not None:
        reported = _reported_pipeline(model, pipeline_report)
        if reported is not None:
            return reported
    return {
        "name": rendered_pipeline(model),
        "device": model.spec.device.target_device,
        "reportedBy": "Render",
    }


def build_status(
    *,
    generation: int | None,
    previous: dict[str, Any] | None,
    now: str,
    rendered: Rendered | Refusal | None,
    deployment: dict[str, Any] | None,
    template_generation_current: bool = True,
    invalid: str | None = None,
    pod_problem: PodProblem | None = None,
    settings: Settings | None = None,
    fetch_report: str | None = None,
    pipeline_report: dict[str, Any] | None = None,
    devices: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The whole status for one reconcile or Deployment event. ``pipeline_report``: what a
    serving pod said of its generative pipeline (PipelineReports); ``devices``: what the
    pods' ResourceClaims were allocated (claimhealth.allocated_devices)."""
    prior = previous or {}
    prior_conditions: list[dict[str, Any]] = prior.get("conditions") or []
    status: dict[str, Any] = {"observedGeneration": generation}
    if invalid is not None:
        states = refused_states("InvalidSpec", invalid)
    elif isinstance(rendered, Refusal):
        states = refused_states(rendered.reason, rendered.message)
    else:
        states = rollout_states(
            deployment, template_generation_current, _was_serving(prior_conditions, generation)
        )
        if pod_problem is not None and states[READY].status != "True":
            if pod_problem.transient:
                # Still rolling out (a node may be on its way); the message says what waits.
                waiting = states[READY]
                message = f"{waiting.message}; {pod_problem.message}"
                states = {**states, READY: ConditionState("False", waiting.reason, message)}
            else:
                # The pods say why the rollout does not finish: that is what the user must fix.
                problem = ConditionState("False", pod_problem.reason, pod_problem.message)
                degraded = ConditionState("True", pod_problem.reason, pod_problem.message)
                states = {**states, READY: problem, DEGRADED: degraded}
    # An invalid spec renders nothing that could reach devices or load a model.
    subject = None if invalid is not None else rendered
    device = device_access_state(
        subject,
        pod_problem,
        states[READY].status == "True",
        settings or Settings(),
        devices or (),
    )
    if device.status == "False" and states[READY].status == "True":
        # Serving, but not on the devices asked for (e.g. no node has them): not Ready.
        states = {
            **states,
            READY: ConditionState("False", device.reason, device.message),
            DEGRADED: ConditionState("True", device.reason, device.message),
        }
    loaded = model_loaded(
        subject,
        pod_problem,
        fetch_report,
        states[READY].status == "True",
    )
    states = {**states, DEVICE_ACCESS: device, MODEL_LOADED: loaded}
    if isinstance(rendered, Rendered):
        resolution = rendered.resolution
        dstatus = (deployment or {}).get("status") or {}
        status.update(
            {
                "replicas": int(dstatus.get("replicas", 0)),
                "readyReplicas": int(dstatus.get("readyReplicas", 0)),
                "selector": rendered.label_selector,
                "endpoints": rendered.endpoints,
                "accelerators": list(resolution.accelerators),
                "accessMode": resolution.access_mode,
                "runtime": resolution.runtime,
                "task": rendered.model.spec.model.task,
                "podSecurityLevel": rendered.pod_security_level,
            }
        )
        pipeline = pipeline_status(rendered, pipeline_report)
        if pipeline is not None:
            status["pipeline"] = pipeline
        if resolution.access_mode == "ResourceClaim" and resolution.device_claims:
            status["devices"] = list(devices or [])
    for key in ("pipeline", "devices"):
        if key not in status and prior.get(key) is not None:
            status[key] = None  # no longer generative, or no longer in ResourceClaim mode
    states = {**states, RECONCILING: states[PROGRESSING], STALLED: states[DEGRADED]}
    status["conditions"] = _conditions(states, generation, prior_conditions, now)
    # Carry over what other parts of the operator record (e.g. the replicas last pushed).
    for key in ("appliedReplicas",):
        if key in prior and key not in status:
            status[key] = prior[key]
    return status


def status_patch(previous: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The merge patch from ``previous`` to ``status``: the keys that changed, and in a changed
    object the keys it lost set to null (a merge patch merges objects: a context length a pod
    reported would otherwise outlive the pod)."""
    patch: dict[str, Any] = {}
    for key, value in status.items():
        before = previous.get(key)
        if before == value:
            continue
        if isinstance(value, dict) and isinstance(before, dict):
            value = {**dict.fromkeys(before.keys() - value.keys()), **value}
        patch[key] = value
    return patch
