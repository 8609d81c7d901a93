"""kopf handlers: thin. Render (pure), apply what was rendered, report status.

* An InferenceModel created, changed, or found at start-up is rendered and its objects are
  server-side applied with one field manager and an owner reference (deletion cascades through
  the garbage collector; no finalizer is needed because nothing lives outside Kubernetes).
  Which of the three it is comes from the model's generation and status (``handled``), not
  from kopf's bookkeeping annotations: the operator writes nothing to a model but its status.
* ``spec.replicas`` of the Deployment is never applied: the operator pushes
  ``spec.serving.replicas`` through the Deployment's scale subresource when that value changes, so
  an HPA or a person scaling the Deployment keeps their count until the InferenceModel's changes.
* Owned Deployments and their pods are watched, so status follows rollouts without a timer;
  one slow loop over all models re-reads what sends no event to us (a pod's warning Events, the
  node agent's reports when node discovery is on).
* Specs the settings cannot serve become Ready=False with the refusal's reason and a Warning
  Event when the reason first appears — never an exception loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import kopf
from pydantic import ValidationError

from kubevino_operator import api
from kubevino_operator.api import InferenceModel
from kubevino_operator.claimhealth import KnownClaims, allocated_devices
from kubevino_operator.cli import describe_validation_error
from kubevino_operator.coalesce import Coalescer
from kubevino_operator.discovery import DISCOVERED_LABEL, DraFacts, Inventory
from kubevino_operator.drift import already_applied
from kubevino_operator.handled import Handled, handled_version, reconcile_for
from kubevino_operator.kube import Kube, KubeError, load_api_client, timestamp
from kubevino_operator.modelsource import is_fetched
from kubevino_operator.podhealth import (
    diagnose,
    diagnose_events,
    fetch_report,
    pods_worth_events,
    warning_events_selector,
)
from kubevino_operator.podreports import PipelineReports, PodToAsk, read_pipeline_report
from kubevino_operator.render import (
    CONFIG_HASH_ANNOTATION,
    INSTANCE_LABEL,
    Rendered,
    render,
    rest_port,
)
from kubevino_operator.settings import Settings, load_settings
from kubevino_operator.status import READY, build_status, status_patch
from kubevino_operator.watched import MANAGED, OwnerCopies, Watched, resource_version

log = logging.getLogger(__name__)

OPTIONAL_KINDS = (
    ("resource.k8s.io/v1", "ResourceClaimTemplate"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
)


class Context:
    """What handlers share: the settings and the client. Set once at start-up."""

    settings: Settings = Settings()
    kube: Kube | None = None
    inventory: tuple[float, Inventory] | None = None  # (read at, what the nodes reported)
    unserved_kinds: set[tuple[str, str]] = set()  # optional kinds this cluster does not serve
    dra_wanted = False  # a model asked for ResourceClaim mode: DRA facts are read from now on
    # Per model: the inventory fingerprint it was last rendered and applied with.
    rendered_with: dict[tuple[str, str], Any] = {}
    # Per model: the version this process last reconciled, and those whose reconcile failed.
    handled: dict[tuple[str, str], Handled] = {}
    unreconciled: set[tuple[str, str]] = set()
    # Per model: when its status was last recomputed (time.monotonic()).
    refreshed_at: dict[tuple[str, str], float] = {}
    owners = OwnerCopies()
    pipelines = PipelineReports()
    claims = KnownClaims()
    background: set[asyncio.Task[None]] = set()

    @classmethod
    def client(cls) -> Kube:
        if cls.kube is None:
            cls.kube = Kube(load_api_client())
        return cls.kube


class NoDiffBase(kopf.DiffBaseStorage):
    """Keeps no diff base: the operator has no handler that compares with one."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


# A pod stuck where only Events say why (a volume, a claim the kubelet cannot prepare) is
# read again within about RECHECK_SECONDS * 1.5: a DRA driver that stops is named within a
# minute.
RECHECK_SECONDS = 20
INVENTORY_MAX_AGE_SECONDS = 15


async def _inventory(model: InferenceModel | str | None = None) -> Inventory | None:
    """What renders read from the cluster, at most every few seconds: the nodes' discovery
    reports when discovery is on, and the DRA facts once any model (``model`` is the one about
    to render) asked for ResourceClaim mode. None when neither is wanted."""
    settings = Context.settings
    if isinstance(model, InferenceModel):
        mode = model.spec.device.access_mode or settings.default_access_mode
        Context.dra_wanted = Context.dra_wanted or mode == "ResourceClaim"
    if not (settings.node_discovery or Context.dra_wanted):
        return None
    now = time.monotonic()
    cached = Context.inventory
    stale = cached is None or now - cached[0] > INVENTORY_MAX_AGE_SECONDS
    if cached is not None and Context.dra_wanted and cached[1].dra is None:
        stale = True
    if cached is None or stale:
        kube = Context.client()
        nodes = (
            Inventory.from_nodes(
                await kube.list("v1", "Node", "", f"{DISCOVERED_LABEL}=true")
            ).nodes
            if settings.node_discovery
            else ()
        )
        dra = await _dra_facts(kube) if Context.dra_wanted else None
        Context.inventory = (now, Inventory(nodes, dra))
        return Context.inventory[1]
    return cached[1]


async def _dra_facts(kube: Kube) -> DraFacts:
    try:
        classes = await kube.list("resource.k8s.io/v1", "DeviceClass", "")
    except KubeError as error:
        if error.status != 404:
            raise
        return DraFacts(served=False)
    slices = await kube.list("resource.k8s.io/v1", "ResourceSlice", "")
    return DraFacts.from_objects(classes, slices)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    Context.settings = load_settings()
    # Events for what users must act on only; kopf's own per-handler chatter would be writes.
    settings.posting.level = logging.WARNING
    # No create/update/resume handlers (see ``handled``): nothing reads a diff base, and kopf
    # would deep-copy every watched object, pods included, to build one.
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.execution.max_workers = 8
    # Resources are known up front: no cluster-wide CRD scanning (and no permission for it).
    settings.scanning.disabled = True


def _parse(body: kopf.Body | dict[str, Any]) -> InferenceModel | str:
    try:
        return InferenceModel.model_validate(dict(body))
    except ValidationError as error:
        return describe_validation_error(error)


def _deployment_for_apply(obj: dict[str, Any]) -> dict[str, Any]:
    spec = {key: value for key, value in obj["spec"].items() if key != "replicas"}
    return {**obj, "spec": spec}


async def _apply_one(body: kopf.Body, obj: dict[str, Any], compare_first: bool) -> dict[str, Any]:
    kube = Context.client()
    owned = _deployment_for_apply(obj) if obj["kind"] == "Deployment" else dict(obj)
    kopf.adopt(owned, owner=body)
    if compare_first:
        meta = owned["metadata"]
        live = await kube.get(owned["apiVersion"], owned["kind"], meta["namespace"], meta["name"])
        if live is not None and already_applied(live, owned):
            return live
    return await kube.apply(owned)


async def _apply_all(
    body: kopf.Body, rendered: Rendered, compare_first: bool, prune: bool
) -> dict[str, Any] | None:
    """Apply every rendered object (concurrently: Kubernetes does not need an order).

    ``compare_first`` reads each object and skips the write when it is already as rendered:
    at start-up that turns a resync of an unchanged cluster into reads only.
    """
    applied = await asyncio.gather(
        *(_apply_one(body, obj, compare_first) for obj in rendered.objects)
    )
    if prune:
        await _prune(body, rendered)
    return next((live for live in applied if live.get("kind") == "Deployment"), None)


async def _prune(body: kopf.Body, rendered: Rendered) -> None:
    """Delete optional objects (HPA, PDB) this model owned but no longer renders."""
    kube = Context.client()
    wanted = {(obj["apiVersion"], obj["kind"]) for obj in rendered.objects}
    selector = f"{INSTANCE_LABEL}={body['metadata']['name']}"
    for api_version, kind in OPTIONAL_KINDS:
        if (api_version, kind) in wanted or (api_version, kind) in Context.unserved_kinds:
            continue
        try:
            items = await kube.list(api_version, kind, body["metadata"]["namespace"], selector)
        except KubeError as error:
            if error.status != 404:
                raise
            # A cluster without Dynamic Resource Allocation has no ResourceClaimTemplates.
            Context.unserved_kinds.add((api_version, kind))
            continue
        for item in items:
            owners = item["metadata"].get("ownerReferences") or []
            if any(owner.get("uid") == body["metadata"]["uid"] for owner in owners):
                await kube.delete(
                    api_version, kind, item["metadata"]["namespace"], item["metadata"]["name"]
                )


async def _push_replicas(
    model: InferenceModel, applied: int | None, deployment: dict[str, Any] | None
) -> tuple[int | None, dict[str, Any] | None]:
    """Scale the Deployment when spec.serving.replicas changed since it was last pushed.

    Returns the replica count now recorded as pushed, and the Deployment as it is after.
    """
    serving = model.spec.serving
    if serving.autoscaling is not None or deployment is None or applied == serving.replicas:
        return applied, deployment
    if (deployment.get("spec") or {}).get("replicas") != serving.replicas:
        namespace, name = model.metadata.namespace, model.metadata.name
        await Context.client().merge_patch(
            "apps/v1",
            "Deployment",
            namespace,
            name,
            {"spec": {"replicas": serving.replicas}},
            subresource="scale",
        )
        deployment = await Context.client().get("apps/v1", "Deployment", namespace, name)
    return serving.replicas, deployment


def _template_current(rendered: Rendered, deployment: dict[str, Any] | None) -> bool:
    if deployment is None:
        return False
    want = next(o for o in rendered.objects if o["kind"] == "Deployment")
    annotations = (deployment["spec"]["template"]["metadata"].get("annotations")) or {}
    wanted_hash = want["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    return bool(annotations.get(CONFIG_HASH_ANNOTATION) == wanted_hash)


def _short_of_pods(deployment: dict[str, Any] | None) -> bool:
    """Fewer pods serve than wanted: only then are the pods worth reading."""
    if deployment is None:
        return False
    wanted = int((deployment.get("spec") or {}).get("replicas", 1))
    available = int((deployment.get("status") or {}).get("availableReplicas", 0))
    return available < wanted


async def _announce(owner: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> None:
    """A Warning Event when Ready turns False for a new reason the user must act on.

    Posted by the operator itself, not with ``kopf.warn``: kopf's event queue exists only inside
    its per-object handlers, and refreshes also run from the recheck loop.
    """

    def ready(status: dict[str, Any]) -> dict[str, Any]:
        return next((c for c in status.get("conditions") or [] if c["type"] == READY), {})

    old, new = ready(before), ready(after)
    if new.get("status") != "False" or new.get("reason") == old.get("reason"):
        return
    if new.get("reason") in ("RollingOut", "DeploymentMissing", "ScaledToZero"):
        return
    try:
        await Context.client().post_event(owner, "Warning", new["reason"], new.get("message", ""))
    except KubeError as error:  # an Event is a courtesy: the condition already says it
        log.warning("event %s not posted: %s", new["reason"], error)


@dataclass(frozen=True)
class RefreshHints:
    """Why a refresh is asked for: the replica count just pushed, the Deployment just seen
    (and whether the watch or the operator's own write showed it)."""

    applied_replicas: int | None = None
    deployment: dict[str, Any] | None = None
    deployment_from_watch: bool = True


def _merged_hints(older: RefreshHints, newer: RefreshHints) -> RefreshHints:
    """Watch events arrive in order, so the newer of two Deployments from the watch is the
    newer one. A Deployment from the operator's own write and one from the watch cannot be
    ordered (resourceVersions are opaque): when they differ, neither is used and it is read."""
    applied = (
        newer.applied_replicas if newer.applied_replicas is not None else older.applied_replicas
    )
    if older.deployment is None or newer.deployment is None:
        kept = newer if newer.deployment is not None else older
        return RefreshHints(applied, kept.deployment, kept.deployment_from_watch)
    if older.deployment_from_watch == newer.deployment_from_watch or resource_version(
        older.deployment
    ) == resource_version(newer.deployment):
        return RefreshHints(applied, newer.deployment, newer.deployment_from_watch)
    return RefreshHints(applied, None)


async def refresh_status(
    namespace: str,
    name: str,
    applied_replicas: int | None = None,
    deployment: dict[str, Any] | None = None,
    deployment_from_watch: bool = True,
) -> None:
    """Recompute the status from the model as it is now, and write what changed.

    Every status write goes through here: one at a time per model, and the events of a burst
    folded into one refresh (``coalesce``). ``deployment`` is the Deployment as the caller just
    saw it (an apply's response, a watch event); without it the Deployment is read. Every change
    of a Deployment's status arrives as an event, so the last write always reflects the newest
    Deployment.
    """
    hints = RefreshHints(applied_replicas, deployment, deployment_from_watch)
    await _refreshes.run((namespace, name), hints)


async def _refresh_now(model: tuple[str, str], hints: RefreshHints) -> None:
    namespace, name = model
    applied_replicas, deployment = hints.applied_replicas, hints.deployment
    Context.refreshed_at[model] = time.monotonic()
    kube = Context.client()
    owner = await _current_owner(model)
    if owner is None:
        return
    previous: dict[str, Any] = owner.get("status") or {}
    parsed = _parse(owner)
    rendered = (
        None
        if isinstance(parsed, str)
        else render(parsed, Context.settings, await _inventory(parsed))
    )
    if not isinstance(rendered, Rendered):
        deployment = None
    elif deployment is None:
        deployment = await kube.get("apps/v1", "Deployment", namespace, name)
    pod_problem = None
    report = None
    devices = None
    if isinstance(rendered, Rendered):
        short, fetched = _short_of_pods(deployment), is_fetched(rendered.model)
        claiming = rendered.resolution.access_mode == "ResourceClaim" and bool(
            rendered.resolution.device_claims
        )
        # Pods are read only when they have something to say: why too few serve, what the
        # model fetch reported, or which devices their claims were allocated.
        pods = Watched.pods_of(model) if (short or fetched or claiming) else []
        if claiming:
            devices = await _allocated_devices(model, pods)
        report = fetch_report(pods) if fetched else None
        if short:
            pod_problem = diagnose(pods)
        if short and pod_problem is None:
            asked = pods_worth_events(pods)
            said = await asyncio.gather(
                *(
                    kube.list("v1", "Event", namespace, field_selector=selector)
                    for selector in map(warning_events_selector, asked)
                )
            )
            pod_problem = diagnose_events(asked, [e for events in said for e in events])
    pipeline_report = _pipeline_report(model, rendered) if isinstance(rendered, Rendered) else None
    status = build_status(
        generation=owner["metadata"].get("generation"),
        previous=previous,
        now=timestamp(),
        rendered=rendered,
        deployment=deployment,
        template_generation_current=isinstance(rendered, Rendered)
        and _template_current(rendered, deployment),
        invalid=parsed if isinstance(parsed, str) else None,
        pod_problem=pod_problem,
        settings=Context.settings,
        fetch_report=report,
        pipeline_report=pipeline_report,
        devices=devices,
    )
    if applied_replicas is not None:
        status["appliedReplicas"] = applied_replicas
    changed = status_patch(previous, status)
    if changed:
        written = await kube.merge_patch(
            api.API_VERSION,
            api.KIND,
            namespace,
            name,
            {"status": changed},
            subresource="status",
        )
        Context.owners.remember(model, written)
    await _announce(owner, previous, status)


async def _allocated_devices(
    model: tuple[str, str], pods: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """What the pods' ResourceClaims were allocated; only claims not yet known allocated are
    read (KnownClaims)."""
    live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    names = Context.claims.to_read(model, live)
    try:
        read = await asyncio.gather(
            *(Context.client().get("resource.k8s.io/v1", "ResourceClaim", model[0], name)
              for name in names)
        )  # fmt: skip
    except KubeError as error:  # the status keeps what is known; the next refresh reads again
        log.warning("claims of %s/%s not read: %s", *model, error)
        read = []
        names = []
    known = Context.claims.record(model, live, dict(zip(names, read, strict=True)))
    return allocated_devices(live, known)


def _pipeline_report(model: tuple[str, str], rendered: Rendered) -> dict[str, Any] | None:
    """What a serving kubevino-serve pod said of its generative pipeline; when no pod of the
    serving template has said it yet, one is asked in the background (the refresh it triggers
    shows the answer): this refresh is never held up by a pod."""
    if rendered.model.spec.model.task == "Tensor" or rendered.resolution.runtime != "Kubevino":
        return None  # Model Server publishes no such report: the render's view stands
    pods = Watched.pods_of(model)
    ask = Context.pipelines.pod_to_ask(model, pods)
    if ask is not None:
        task = asyncio.create_task(_ask_pod(model, ask, rest_port(rendered.model)))
        Context.background.add(task)
        task.add_done_callback(Context.background.discard)
    return Context.pipelines.current(model, pods)


async def _ask_pod(model: tuple[str, str], ask: PodToAsk, rest_port: int) -> None:
    report = await read_pipeline_report(ask.ip, rest_port)
    if report is None or report.get("state") != "Loaded":
        return  # not asked again: the status keeps what the render implies
    if Context.pipelines.record(model, ask.template, report):
        try:
            await refresh_status(*model)
        except Exception as error:  # the next event's refresh shows the report anyway
            log.warning("status of %s/%s not refreshed: %s", *model, error)


async def _current_owner(model: tuple[str, str]) -> dict[str, Any] | None:
    """The model as it is: the copy last read or written while the watch has seen nothing
    newer (``OwnerCopies``), else read from the API server."""
    cached = Context.owners.current(model, Watched.model(model))
    if cached is not None:
        return cached
    owner = await Context.client().get(api.API_VERSION, api.KIND, *model)
    if owner is None:
        Context.owners.forget(model)
    else:
        Context.owners.remember(model, owner)
    return owner


_refreshes: Coalescer[tuple[str, str], RefreshHints] = Coalescer(_refresh_now, _merged_hints)


async def _reconcile(body: kopf.Body, *, compare_first: bool, prune: bool) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    parsed = _parse(body)
    applied: int | None = None
    deployment: dict[str, Any] | None = None
    # The body kopf hands over is the model as the watch saw it: a copy worth keeping unless
    # the operator already holds a newer one.
    Context.owners.offer((namespace, name), dict(body))
    # Events about the objects being applied wait and fold into the one refresh below: one
    # status write per reconcile, not one per event.
    async with _refreshes.held((namespace, name)):
        if not isinstance(parsed, str):
            inventory = await _inventory(parsed)
            rendered = render(parsed, Context.settings, inventory)
            if inventory is not None:
                Context.rendered_with[(namespace, name)] = inventory.fingerprint()
            if isinstance(rendered, Rendered):
                deployment = await _apply_all(body, rendered, compare_first, prune)
                applied, deployment = await _push_replicas(
                    parsed, (body.get("status") or {}).get("appliedReplicas"), deployment
                )
    await refresh_status(namespace, name, applied, deployment, deployment_from_watch=False)


def _newer_body(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """Of two copies of a model waiting for one reconcile, the one of the later spec (a copy
    read by the recheck loop and one from the watch cannot be ordered otherwise)."""
    return older if handled_version(older).generation > handled_version(newer).generation else newer


async def _reconcile_if_due(model: tuple[str, str], body: dict[str, Any]) -> None:
    plan = reconcile_for(body, Context.handled.get(model))
    if plan is None:
        Context.unreconciled.discard(model)
        return
    try:
        await _reconcile(cast(kopf.Body, body), compare_first=plan.compare_first, prune=plan.prune)
    except Exception:
        Context.unreconciled.add(model)
        raise
    Context.handled[model] = handled_version(body)
    Context.unreconciled.discard(model)


# One reconcile at a time per model; copies of it that arrive meanwhile fold into the next.
_reconciles: Coalescer[tuple[str, str], dict[str, Any]] = Coalescer(_reconcile_if_due, _newer_body)


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def model_event(body: kopf.Body, event: kopf.RawEvent, **_: Any) -> None:
    """Every watch event of a model, the start-up listing's included: reconcile when
    ``handled`` says this process has not reconciled the model's current spec. An event handler,
    not kopf's create/update/resume handlers, so kopf keeps no bookkeeping on the model."""
    model = (body["metadata"]["namespace"], body["metadata"]["name"])
    if event["type"] == "DELETED":
        Context.handled.pop(model, None)
        Context.unreconciled.discard(model)
        return
    if reconcile_for(body, Context.handled.get(model)) is None:
        return  # the echo of a status write, most often: nothing to wait in line for
    try:
        await _reconciles.run(model, dict(body))
    except Exception as error:  # retried by the recheck loop, and by the model's next event
        log.warning(
            "reconcile of %s/%s failed, retried within %d s: %s", *model, RECHECK_SECONDS, error
        )


RECHECKS_AT_ONCE = 8


async def recheck() -> None:
    """What no watched object announces, and only that (a healthy, unchanged model costs no
    request): with discovery, nodes whose reports changed since a model was last rendered
    (render GIDs, nodes that gained the accelerator) re-render it; a model that does not serve
    has its status re-read once no event has done so for a while (a pod stuck on a volume only
    says so in Events; models that events keep refreshing, as in a large rollout, are left to
    them)."""
    inventory = await _inventory()
    fingerprint = inventory.fingerprint() if inventory is not None else None
    models = {key: seen.ready for key, seen in Watched.all_models().items()}
    for memory in (Context.rendered_with, Context.refreshed_at, Context.handled):
        for gone in set(memory) - set(models):
            del memory[gone]
    Context.unreconciled &= set(models)
    for gone in Context.owners.keys() - set(models):
        Context.owners.forget(gone)
    for gone in Context.pipelines.keys() - set(models):
        Context.pipelines.forget(gone)
    for gone in Context.claims.keys() - set(models):
        Context.claims.forget(gone)
    quiet_since = time.monotonic() - RECHECK_SECONDS / 2
    turns = asyncio.Semaphore(RECHECKS_AT_ONCE)

    async def one(key: tuple[str, str], ready: str) -> None:
        async with turns:
            if key in Context.unreconciled:
                body = await Context.client().get(api.API_VERSION, api.KIND, *key)
                if body is not None:
                    await _reconciles.run(key, body)
            elif inventory is not None and Context.rendered_with.get(key) != fingerprint:
                body = await Context.client().get(api.API_VERSION, api.KIND, *key)
                if body is not None:
                    await _reconcile(cast(kopf.Body, body), compare_first=True, prune=False)
            elif ready != "True" and Context.refreshed_at.get(key, 0.0) <= quiet_since:
                await refresh_status(*key)

    outcomes = await asyncio.gather(
        *(one(key, ready) for key, ready in models.items()), return_exceptions=True
    )
    for key, outcome in zip(models, outcomes, strict=True):
        if isinstance(outcome, Exception):
            log.warning("recheck of %s/%s failed: %s", *key, outcome)


async def _recheck_forever() -> None:
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        try:
            await recheck()
        except Exception as error:  # an API server away for a moment must not end the loop
            log.warning("recheck failed: %s", error)


# What kopf watches here, by group version. Scanning is off, so kopf resolves them once, right
# after the start-up handlers: a resource the API server's discovery lacks at that moment (it is
# starting or restarting, and serves groups as they come up) would never be watched at all.
WATCHED_RESOURCES = {
    "v1": {"pods"},
    "apps/v1": {"deployments"},
    f"{api.GROUP}/{api.VERSION}": {api.PLURAL},
}
WAIT_REPORT_SECONDS = 30.0


async def unserved_resources(kube: Kube) -> list[str]:
    """The watched resources discovery does not list yet (all of them while unreachable)."""
    missing: list[str] = []
    for group_version, names in WATCHED_RESOURCES.items():
        try:
            served = await kube.served_resources(group_version)
        except Exception:  # unreachable: nothing is served
            served = set()
        missing += [f"{name}.{group_version}" for name in sorted(names - served)]
    return missing


@kopf.on.startup()
async def wait_for_watched_resources(**_: Any) -> None:
    """Hold kopf's watches until discovery serves every resource they need."""
    # While the API server is away, urllib3 would log each of its retries several times a
    # second; the warning below says what is awaited, every WAIT_REPORT_SECONDS.
    with _quiet("urllib3.connectionpool"):
        await _wait_until_served()


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    quieted = logging.getLogger(logger_name)
    level = quieted.level
    quieted.setLevel(logging.ERROR)
    try:
        yield
    finally:
        quieted.setLevel(level)


async def _wait_until_served() -> None:
    reported_at: float | None = None
    while missing := await unserved_resources(Context.client()):
        now = time.monotonic()
        if reported_at is None or now - reported_at >= WAIT_REPORT_SECONDS:
            hint = (
                " (is the CRD installed? kubectl apply --server-side -f crds/)"
                if any(api.PLURAL in name for name in missing)
                else ""
            )
            log.warning("waiting for the API server to serve %s%s", ", ".join(missing), hint)
            reported_at = now
        await asyncio.sleep(1)


@kopf.on.startup()
async def start_rechecks(**kwargs: Any) -> None:
    """One loop for all models rather than a kopf timer per model: kopf guards timers with a
    finalizer, and a finalizer would make deleting a model wait for a running operator."""
    Watched.attach(kwargs)
    task = asyncio.create_task(_recheck_forever())
    Context.background.add(task)
    task.add_done_callback(Context.background.discard)


@kopf.on.cleanup()
async def stop_rechecks(**_: Any) -> None:
    for task in list(Context.background):
        task.cancel()
    await asyncio.gather(*Context.background, return_exceptions=True)


def _owning_model(body: kopf.Body) -> str | None:
    """The model a labelled object belongs to, if that model still exists (objects of a model
    being deleted keep sending events until the garbage collector is done with them)."""
    name = (body["metadata"].get("labels") or {}).get(INSTANCE_LABEL)
    if name and Watched.model((body["metadata"]["namespace"], name)) is not None:
        return str(name)
    return None


@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def pod_changed(body: kopf.Body, **_: Any) -> None:
    """A pod that cannot pull, start or stay up changes no Deployment status: watch pods."""
    name = _owning_model(body)
    if name:
        await refresh_status(body["metadata"]["namespace"], name)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
async def deployment_changed(body: kopf.Body, **_: Any) -> None:
    name = _owning_model(body)
    if name:
        # The event carries the Deployment as it is now: no need to read it again.
        await refresh_status(body["metadata"]["namespace"], name, deployment=dict(body))
