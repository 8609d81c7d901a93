"""The Helm chart with the real helm binary: lint, template, schema, and install/upgrade/
uninstall against the test control plane."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kubevino_devcluster.controlplane import REPO, ControlPlane, kube_binaries, pinned_version
from kubevino_operator.podsecurity import pod_security_level
from kubevino_operator.rbac import agent_rules, cluster_role
from kubevino_operator.settings import Settings
from tests.cluster.conftest import get, model_manifest, wait_until

pytestmark = pytest.mark.cluster
CHART = REPO / "charts" / "kubevino"
# helm built with `go install` assumes Kubernetes v1.20 when no cluster is asked: render for
# the version this tier runs on (checked against the chart's kubeVersion).
KUBE_VERSION = ["--kube-version", pinned_version("KUBE_VERSION").removeprefix("v")]


@pytest.fixture(scope="module")
def helm() -> Path:
    return kube_binaries() / "helm"


def run_helm(
    helm: Path, *args: str, kubeconfig: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [str(helm), *args]
    if kubeconfig is not None:
        command += ["--kubeconfig", str(kubeconfig)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {done.stderr}")
    return done


def rendered(helm: Path, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "kv", str(CHART), "--namespace", "kubevino-system", *KUBE_VERSION]
    for value in sets:
        args += ["--set", value]
    return [doc for doc in yaml.safe_load_all(run_helm(helm, *args).stdout) if doc]


def test_helm_lint_is_clean(helm: Path) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART), *KUBE_VERSION)
    assert "0 chart(s) failed" in done.stdout


def test_template_output_is_valid_kubernetes(helm: Path) -> None:
    objects = rendered(helm)
    assert {obj["kind"] for obj in objects} == {
        "ServiceAccount",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
    }
    for obj in objects:
        kubernetes_validate.validate(obj, "1.34.0", strict=True)


def test_the_chart_ships_exactly_the_role_the_tests_run_under(helm: Path) -> None:
    role = next(obj for obj in rendered(helm) if obj["kind"] == "ClusterRole")
    assert role["rules"] == cluster_role()["rules"]


def test_the_node_agent_is_off_by_default_and_least_privileged_when_on(helm: Path) -> None:
    assert not any(obj["kind"] == "DaemonSet" for obj in rendered(helm))
    objects = rendered(helm, "nodeAgent.enabled=true", "settings.nodeDiscovery=true")
    for obj in objects:
        kubernetes_validate.validate(obj, "1.34.0", strict=True)
    roles = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "ClusterRole"}
    assert roles["kv-kubevino-node-agent"]["rules"] == agent_rules()
    agent = next(obj for obj in objects if obj["kind"] == "DaemonSet")
    pod = agent["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][0] == "node-agent"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert all(mount["readOnly"] for mount in container["volumeMounts"])
    assert {v["hostPath"]["path"] for v in pod["volumes"]} == {"/dev", "/sys"}
    # hostPath is what makes it privileged level, nothing else.
    assert pod_security_level(pod) == "privileged"
    without_host_paths = {**pod, "volumes": [{"name": "dev", "emptyDir": {}}]}
    assert pod_security_level(without_host_paths) == "restricted"
    config = next(obj for obj in objects if obj["kind"] == "ConfigMap")
    assert Settings.model_validate(yaml.safe_load(config["data"]["settings.yaml"])).node_discovery


def test_settings_values_become_a_settings_file_the_operator_accepts(helm: Path) -> None:
    objects = rendered(helm, "settings.renderGroupId=992", "settings.allowPrivileged=true")
    config = next(obj for obj in objects if obj["kind"] == "ConfigMap")
    settings = Settings.model_validate(yaml.safe_load(config["data"]["settings.yaml"]))
    assert settings.render_group_id == 992 and settings.allow_privileged


def test_the_operator_pod_is_restricted(helm: Path) -> None:
    deployment = next(obj for obj in rendered(helm) if obj["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod_security_level(pod) == "restricted"
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_settings_hash_annotation_is_a_string_whatever_its_digits(helm: Path) -> None:
    """A 16-hex-digit hash is sometimes all digits; unquoted, YAML made it a number, which the
    API server refuses as an annotation (a helm upgrade failed on it in a test run)."""
    template = (CHART / "templates" / "deployment.yaml").read_text()
    assert "sha256sum | trunc 16 | quote" in template
    for root in ("/dev", "/tmp/fake-dev", "/run/devices"):
        objects = rendered(helm, f"settings.deviceRoot={root}")
        deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert isinstance(annotations["kubevino.io/settings-hash"], str)


def test_the_values_schema_rejects_wrong_types(helm: Path) -> None:
    args = ["template", "kv", str(CHART), *KUBE_VERSION, "--set", "healthPort=http"]
    done = run_helm(helm, *args, check=False)
    assert done.returncode != 0 and "healthPort" in done.stderr
    done = run_helm(
        helm,
        "template",
        "kv",
        str(CHART),
        *KUBE_VERSION,
        "--set",
        "settings.defaultAccessMode=Sometimes",
        check=False,
    )
    assert done.returncode != 0 and "defaultAccessMode" in done.stderr


@pytest.fixture
def release_namespace(cluster: ControlPlane) -> Iterator[str]:
    name = "kv-helm"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_install_upgrade_uninstall_with_real_helm(
    helm: Path, cluster: ControlPlane, release_namespace: str, namespace: str
) -> None:
    kubeconfig = cluster.admin_kubeconfig
    # The CRD is already in the cluster (installed by the fixture); Helm leaves it alone.
    run_helm(
        helm,
        "install",
        "kv",
        str(CHART),
        "-n",
        release_namespace,
        "--skip-crds",
        kubeconfig=kubeconfig,
    )
    deployment = wait_until(
        lambda: get(cluster, "deployment", "kv-kubevino", release_namespace),
        30,
        "the operator Deployment",
    )
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "kv-kubevino"
    assert get(cluster, "clusterrole", "kv-kubevino", "default") is not None
    before = deployment["spec"]["template"]["metadata"]["annotations"]["kubevino.io/settings-hash"]
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(model_manifest("kept", namespace)))
    run_helm(
        helm,
        "upgrade",
        "kv",
        str(CHART),
        "-n",
        release_namespace,
        "--skip-crds",
        "--set",
        "settings.renderGroupId=109",
        kubeconfig=kubeconfig,
    )
    config = get(cluster, "configmap", "kv-kubevino-settings", release_namespace)
    assert config is not None and "renderGroupId: 109" in config["data"]["settings.yaml"]
    upgraded = get(cluster, "deployment", "kv-kubevino", release_namespace)
    assert upgraded is not None
    after = upgraded["spec"]["template"]["metadata"]["annotations"]["kubevino.io/settings-hash"]
    assert after != before  # a settings change rolls the operator
    run_helm(helm, "uninstall", "kv", "-n", release_namespace, "--wait", kubeconfig=kubeconfig)
    assert get(cluster, "clusterrole", "kv-kubevino", "default") is None
    assert get(cluster, "deployment", "kv-kubevino", release_namespace) is None
    # Users' InferenceModels and the CRD stay, as Helm does with CRDs.
    assert get(cluster, "inferencemodel", "kept", namespace) is not None
    crds = json.loads(cluster.kubectl("get", "crd", "-o", "json").stdout)["items"]
    assert any(c["metadata"]["name"] == "inferencemodels.kubevino.io" for c in crds)
