"""The operator's least-privilege ClusterRole: one source for the chart and the cluster tests.

Each rule says why it exists; a permission with no reason here is a permission too many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubevino_operator import api


@dataclass(frozen=True)
class Rule:
    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str


RULES: tuple[Rule, ...] = (
    Rule(
        api.GROUP,
        (api.PLURAL,),
        ("get", "list", "watch", "patch"),
        "watch InferenceModels; kopf records the last handled spec in an annotation",
    ),
    Rule(
        api.GROUP,
        (f"{api.PLURAL}/status",),
        ("get", "patch"),
        "report conditions, replicas and endpoints",
    ),
    Rule(
        "apps",
        ("deployments",),
        ("get", "list", "watch", "create", "patch"),
        "server-side apply the model servers (apply may create) and follow their rollout",
    ),
    Rule(
        "apps",
        ("deployments/scale",),
        ("patch",),
        "push spec.serving.replicas without owning spec.replicas",
    ),
    Rule(
        "",
        ("configmaps", "services"),
        ("get", "create", "patch"),
        "server-side apply the runtime config and the Service; get compares first, so an "
        "unchanged object costs no write",
    ),
    Rule(
        "autoscaling",
        ("horizontalpodautoscalers",),
        ("get", "list", "create", "patch", "delete"),
        "apply the HPA when autoscaling is on, delete it when turned off",
    ),
    Rule(
        "policy",
        ("poddisruptionbudgets",),
        ("get", "list", "create", "patch", "delete"),
        "apply the PodDisruptionBudget for multi-replica models, delete it when not needed",
    ),
    Rule(
        "resource.k8s.io",
        ("resourceclaimtemplates",),
        ("get", "list", "create", "patch", "delete"),
        "apply the ResourceClaimTemplate of a ResourceClaim-mode model, delete it when the "
        "model leaves that mode",
    ),
    Rule(
        "resource.k8s.io",
        ("resourceclaims", "deviceclasses", "resourceslices"),
        ("get", "list"),
        "read which devices a model's claims were allocated (status), whether the "
        "DeviceClass a model asks for exists, and whether its driver's ResourceSlices "
        "publish any device",
    ),
    Rule(
        "",
        ("pods",),
        ("list", "watch"),
        "watch the models' pods (kept in memory) to read why they do not serve (image pull, "
        "crash, scheduling) into the conditions",
    ),
    Rule(
        "",
        ("events",),
        ("list", "create"),
        "Warning Events that say what to change when a model is refused; list reads the "
        "kubelet's warnings about pods that never start (a volume that does not mount)",
    ),
    Rule(
        "",
        ("nodes",),
        ("list",),
        "read the node agent's reports (accelerator labels, render GIDs) when nodeDiscovery is on",
    ),
)

# The node agent's own ClusterRole: it reads and labels the Node it runs on, nothing else (no
# RBAC rule can narrow it to one node; the agent only ever names its own).
AGENT_RULES: tuple[Rule, ...] = (
    Rule(
        "",
        ("nodes",),
        ("get", "patch"),
        "read its Node and write the kubevino.io/ labels and annotations it discovered",
    ),
)

NAME = "kubevino-operator"


def _rules(rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": [rule.api_group],
            "resources": list(rule.resources),
            "verbs": list(rule.verbs),
        }
        for rule in rules
    ]


def cluster_role() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/part-of": "kubevino"}},
        "rules": _rules(RULES),
    }


def agent_rules() -> list[dict[str, Any]]:
    return _rules(AGENT_RULES)


def service_account_objects(namespace: str) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding for an operator in ``namespace``."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": NAME, "namespace": namespace},
        },
        cluster_role(),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAME,
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        },
    ]
