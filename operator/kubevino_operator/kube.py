"""A small Kubernetes client for what the operator does: server-side apply, get, merge-patch,
scale, list and delete — any kind the render produces, off the event loop."""

from __future__ import annotations

import asyncio
import functools
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from kubevino_operator.api import API_VERSION, KIND, PLURAL
from kubevino_operator.render import FIELD_MANAGER

PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "Event"): "events",
    ("v1", "Node"): "nodes",
    ("apps/v1", "Deployment"): "deployments",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("resource.k8s.io/v1", "ResourceClaimTemplate"): "resourceclaimtemplates",
    ("resource.k8s.io/v1", "ResourceClaim"): "resourceclaims",
    ("resource.k8s.io/v1", "DeviceClass"): "deviceclasses",
    ("resource.k8s.io/v1", "ResourceSlice"): "resourceslices",
    (API_VERSION, KIND): PLURAL,
}


def _message(data: bytes | str | None, fallback: str | None) -> str:
    try:
        parsed = json.loads(data or b"{}")
    except ValueError:
        return fallback or ""
    return str(parsed.get("message", fallback or "")) if isinstance(parsed, dict) else ""


CONCURRENT_REQUESTS = 32
# Kubernetes keeps an Event's message under 1 KiB.
EVENT_MESSAGE_LIMIT = 1024


def timestamp() -> str:
    """Now, in the API's time format (whole seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def load_api_client() -> k8s.ApiClient:
    """KUBECONFIG (or ~/.kube/config) first, then the in-cluster service account."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call,unused-ignore]
    except (k8s_config.ConfigException, FileNotFoundError, TypeError):
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call,unused-ignore]
    configuration.connection_pool_maxsize = CONCURRENT_REQUESTS
    return k8s.ApiClient(configuration)


def resource_path(
    api_version: str,
    kind: str,
    namespace: str | None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    plural = PLURALS[(api_version, kind)]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


class Kube:
    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api_client = api_client
        # Blocking HTTP calls run here, never on the event loop.
        self._pool = ThreadPoolExecutor(CONCURRENT_REQUESTS, thread_name_prefix="kube")

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            verb, url, header_params, payload, post = self.api_client.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(
                verb,
                url,
                header_params=header_params,
                body=payload,
                post_params=post,
                _request_timeout=60,
            )
            response.read()  # type: ignore[no-untyped-call,unused-ignore]
        except ApiException as error:
            raise KubeError(int(error.status or 0), _message(error.body, error.reason)) from None
        if response.status >= 400:
            raise KubeError(response.status, _message(response.data, response.reason))
        return json.loads(response.data) if response.data else None

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(self._call, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def served_resources(self, group_version: str) -> set[str]:
        """The resources the API server's discovery lists for ``group_version`` ("v1",
        "apps/v1", ...); empty while it does not serve that group version."""
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        try:
            result = await self.call("GET", path)
        except KubeError as error:
            if error.status in (404, 503):
                return set()
            raise
        return {resource["name"] for resource in (result or {}).get("resources", [])}

    async def apply(self, obj: dict[str, Any], force: bool = True) -> dict[str, Any]:
        """Server-side apply as the operator's one field manager."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true" if force else "false")]
        result: dict[str, Any] = await self.call(
            "PATCH",
            path,
            body=json.dumps(obj),
            content_type="application/apply-patch+yaml",
            query=query,
        )
        return result

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.call(
                "GET", resource_path(api_version, kind, namespace, name)
            )
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        return result

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "PATCH",
            resource_path(api_version, kind, namespace, name, subresource),
            body=patch,
            content_type="application/merge-patch+json",
            query=[("fieldManager", FIELD_MANAGER)],
        )
        return result

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        result = await self.call("GET", resource_path(api_version, kind, namespace), query=query)
        items: list[dict[str, Any]] = result.get("items") or []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    async def post_event(
        self, owner: dict[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event about ``owner``, as ``kubectl describe`` shows them."""
        meta = owner["metadata"]
        now = timestamp()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": owner.get("apiVersion", API_VERSION),
                "kind": owner.get("kind", KIND),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:EVENT_MESSAGE_LIMIT],
            "source": {"component": FIELD_MANAGER},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.call("POST", resource_path("v1", "Event", meta["namespace"]), body=event)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        try:
            await self.call("DELETE", resource_path(api_version, kind, namespace, name))
        except KubeError as error:
            if error.status != 404:
                raise
