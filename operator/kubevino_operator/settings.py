"""Operator settings: what the cluster admin decides once (Helm values → a YAML file or env)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from kubevino_operator import __version__
from kubevino_operator.api import AcceleratorName, AccessMode
from kubevino_operator.celrules import ApiModel

SETTINGS_FILE_ENV = "KUBEVINO_SETTINGS"
IMAGE_REPOSITORY = "ghcr.io/kubevino"


class NodePoolGroup(ApiModel):
    """A group ID that holds on the nodes a selector picks (GIDs differ between distros)."""

    node_selector: dict[str, str] = Field(
        description="Labels of the pool's nodes, e.g. {node.kubernetes.io/instance-type: x}.",
        min_length=1,
    )
    gid: int = Field(ge=0, description="The group's numeric ID on those nodes.")


class Settings(ApiModel):
    """Operator-wide settings. Every field has a safe default except the render group."""

    runtime_image: str = Field(
        default=f"{IMAGE_REPOSITORY}/runtime:{__version__}",
        description="kubevino runtime image for CPU-only targets.",
    )
    runtime_gpu_image: str = Field(
        default=f"{IMAGE_REPOSITORY}/runtime-gpu:{__version__}",
        description="kubevino runtime image with Intel GPU/NPU user-space drivers.",
    )
    model_server_image: str = Field(
        default="openvino/model_server:2022.3",
        description="Stock Model Server image for MYRIAD/HDDL (their plugins ended in 2022.3).",
    )
    model_server_gpu_image: str = Field(
        default="openvino/model_server:2022.3-gpu",
        description="Stock Model Server image with GPU drivers, for ModelServer + GPU targets.",
    )
    model_server_generative_image: str = Field(
        default="openvino/model_server:2026.2.1",
        description="Stock Model Server image for generative models (spec.model.task other "
        "than Tensor) with serving.runtime ModelServer: 2026.2 is the first that serves a "
        "local model directory from --task flags alone (no graph.pbtxt).",
    )
    model_server_generative_gpu_image: str = Field(
        default="openvino/model_server:2026.2.1-gpu",
        description="The same with Intel GPU and NPU drivers, for generative GPU/NPU targets.",
    )
    model_server_cuda_image: str = Field(
        default="openvino/model_server:latest-cuda",
        description="Model Server built with openvino_contrib's NVIDIA plugin (built from "
        "source: `make docker_build NVIDIA=1`); point this at your registry.",
    )
    image_pull_policy: str = Field(default="IfNotPresent", description="For every pod.")
    allow_privileged: bool = Field(
        default=False,
        description="Allow privileged containers for HostDevices access (Kubernetes has no "
        "device-cgroup-rule field, so host device nodes need privilege or a device plugin).",
    )
    default_access_mode: AccessMode = Field(
        default="DevicePlugin", description="Access mode when an InferenceModel sets none."
    )
    default_accelerators: list[AcceleratorName] = Field(
        default_factory=lambda: list[AcceleratorName](["cpu"]),
        description="Accelerators a bare AUTO target gets when the InferenceModel lists none.",
    )
    render_group_id: int | None = Field(
        default=None,
        ge=0,
        description="GID of the group owning /dev/dri/renderD* and /dev/accel/* on the nodes "
        "(`stat -c %g /dev/dri/renderD128`): 109/110 on Ubuntu, 105 on Fedora, others "
        "elsewhere. Unset: GPU/NPU models are refused with a condition that says to set it.",
    )
    render_group_ids_by_pool: list[NodePoolGroup] = Field(
        default_factory=list,
        description="Per-node-pool render GIDs. A model whose nodeSelector picks a pool gets "
        "that pool's GID; otherwise it gets all of them plus renderGroupId.",
    )
    node_discovery: bool = Field(
        default=False,
        description="Use what the node agent (chart value nodeAgent.enabled) reports on each "
        "Node: render GIDs of the nodes a pod may land on become its supplementalGroups, "
        "HostDevices pods go to nodes labelled kubevino.io/accelerator-<profile>, and a model "
        "whose accelerator no node has gets DeviceAccess=False (DeviceMissing).",
    )
    usb_group_id: int = Field(
        default=100,
        ge=0,
        description="GID owning NCS2 USB nodes: OpenVINO's udev rule (97-myriad-usbboot.rules) "
        "gives them to 'users', GID 100 on Debian and Ubuntu.",
    )
    device_root: str = Field(
        default="/dev",
        pattern=r"^/",
        description="Where the nodes keep device nodes; tests point it at fake ones.",
    )
    wsl_library_path: str = Field(
        default="/usr/lib/wsl", pattern=r"^/", description="WSL2's driver library directory."
    )
    hddl_socket_dir: str = Field(
        default="/var/tmp", pattern=r"^/", description="Where hddldaemon keeps its sockets."
    )
    device_plugin_resources: dict[AcceleratorName, str] = Field(
        default_factory=dict,
        description="Override a profile's extended resource name (e.g. intel-gpu: "
        "gpu.intel.com/xe for the xe driver).",
    )
    dra_device_classes: dict[AcceleratorName, str] = Field(
        default_factory=dict,
        description="Override a profile's DeviceClass for ResourceClaim mode (e.g. intel-gpu: "
        "a class your cluster defines over Intel's driver).",
    )
    node_selectors: dict[AcceleratorName, dict[str, str]] = Field(
        default_factory=dict,
        description="Override the node labels a profile's HostDevices pods require "
        "({} turns node selection off).",
    )
    image_volumes: bool = Field(
        default=False,
        description="Mount image model sources as image volumes: Kubernetes 1.33/1.34 with "
        "the ImageVolume feature gate on (beta, off by default), on by default from 1.35, and "
        "a runtime that supports them (containerd 2.1+, CRI-O 1.31+). Off: an init container "
        "running the model image copies its model directory out (the image needs cp).",
    )
    run_as_user: int = Field(default=5000, ge=1, description="Non-root UID of server pods.")
    run_as_group: int = Field(default=5000, ge=1, description="Primary GID of server pods.")
    cluster_domain: str = Field(default="cluster.local", description="For endpoint URLs.")
    watch_namespaces: list[str] = Field(
        default_factory=list, description="Namespaces the operator watches (empty: all)."
    )


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from a YAML file (``path``, else $KUBEVINO_SETTINGS), defaults when absent."""
    chosen = path if path is not None else os.environ.get(SETTINGS_FILE_ENV)
    if not chosen:
        return Settings()
    text = Path(chosen).read_text(encoding="utf-8")
    data: Any = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise SettingsError(f"{chosen}: settings must be a YAML mapping")
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        raise SettingsError(f"{chosen}: {error}") from error


class SettingsError(ValueError):
    """Settings that cannot be used; the message names the file and the field."""
