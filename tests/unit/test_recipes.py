"""Each docker recipe of Model Server's accelerator guide, the Kubernetes way.

Every test names the recipe's docker flags and asserts the rendered pod carries the Kubernetes
equivalent of each one.
"""

from __future__ import annotations

from kubevino_operator.api import AcceleratorName
from kubevino_operator.profiles import PROFILES
from tests.unit.builders import (
    find,
    model,
    model_server_config,
    mounts,
    pod_spec,
    refusal,
    rendered,
    server,
    settings,
)

PRIVILEGE_ALLOWED = settings(allowPrivileged=True, renderGroupId=110)


def _cgroup_rules(name: AcceleratorName) -> list[str]:
    host_devices = PROFILES[name].host_devices
    assert host_devices is not None
    return [str(rule) for rule in host_devices.cgroup_rules]


def test_ncs2_secure_recipe() -> None:
    """docker run -u 0 --device-cgroup-rule='c 189:* rmw' -v /dev/bus/usb:/dev/bus/usb
    openvino/model_server --target_device MYRIAD"""
    result = rendered(
        model(device={"targetDevice": "MYRIAD", "accessMode": "HostDevices"}), PRIVILEGE_ALLOWED
    )
    # -v /dev/bus/usb:/dev/bus/usb: the whole USB tree, because the stick re-enumerates.
    usb = mounts(result)["/dev/bus/usb"]
    assert usb["volume"]["hostPath"] == {"path": "/dev/bus/usb", "type": "Directory"}
    # --device-cgroup-rule='c 189:* rmw': Kubernetes grants a device cgroup only to privileged
    # containers; the profile records the exact rule the privilege stands in for.
    assert _cgroup_rules("ncs2") == ["c 189:* rwm"]
    assert server(result)["securityContext"]["privileged"] is True
    # -u 0 is not needed: the process stays non-root in the group the udev rule gives the stick.
    assert pod_spec(result)["securityContext"]["runAsNonRoot"] is True
    assert 100 in pod_spec(result)["securityContext"]["supplementalGroups"]
    # openvino/model_server (2022.3, the last with the MYRIAD plugin) --target_device MYRIAD
    assert server(result)["image"] == "openvino/model_server:2022.3"
    assert model_server_config(result)["target_device"] == "MYRIAD"
    assert result.pod_security_level == "privileged"


def test_ncs2_secure_recipe_is_refused_unless_the_admin_allows_privilege() -> None:
    refused = refusal(model(device={"targetDevice": "MYRIAD", "accessMode": "HostDevices"}))
    assert refused.reason == "PrivilegeNotAllowed"
    assert "c 189:* rwm" in refused.message and "allowPrivileged" in refused.message


def test_ncs2_privileged_recipe_mounts_only_what_the_stick_needs() -> None:
    """docker run --privileged -u root -v /dev:/dev ... --target_device MYRIAD"""
    result = rendered(
        model(device={"targetDevice": "MYRIAD", "accessMode": "HostDevices"}), PRIVILEGE_ALLOWED
    )
    # --privileged: yes, but -v /dev:/dev is narrowed to /dev/bus/usb and root is not needed.
    assert server(result)["securityContext"]["privileged"] is True
    host_paths = [v["hostPath"]["path"] for v in pod_spec(result)["volumes"] if "hostPath" in v]
    assert host_paths == ["/dev/bus/usb"]
    assert pod_spec(result)["securityContext"]["runAsUser"] != 0


def test_ncs2_through_a_device_plugin_needs_no_privilege() -> None:
    result = rendered(model(device={"targetDevice": "MYRIAD", "accessMode": "DevicePlugin"}))
    limits = server(result)["resources"]["limits"]
    assert limits["squat.ai/ncs2"] == 1
    assert "privileged" not in server(result)["securityContext"]
    assert result.pod_security_level == "restricted"


def test_hddl_recipe() -> None:
    """docker run --device=/dev/ion:/dev/ion -v /var/tmp:/var/tmp (--user root, as hddldaemon)
    openvino/model_server --target_device HDDL"""
    result = rendered(
        model(device={"targetDevice": "HDDL", "accessMode": "HostDevices"}), PRIVILEGE_ALLOWED
    )
    by_path = mounts(result)
    # --device=/dev/ion:/dev/ion
    assert by_path["/dev/ion"]["volume"]["hostPath"] == {"path": "/dev/ion", "type": "CharDevice"}
    # -v /var/tmp:/var/tmp, writable: the daemon's sockets live there.
    assert by_path["/var/tmp"]["volume"]["hostPath"]["path"] == "/var/tmp"
    assert by_path["/var/tmp"]["mount"]["readOnly"] is False
    # --user root
    assert pod_spec(result)["securityContext"]["runAsUser"] == 0
    assert server(result)["image"] == "openvino/model_server:2022.3"
    assert model_server_config(result)["target_device"] == "HDDL"


def test_hddl_through_its_device_plugin_still_needs_the_daemon_sockets() -> None:
    result = rendered(model(device={"targetDevice": "HDDL", "accessMode": "DevicePlugin"}))
    assert server(result)["resources"]["limits"]["vpu.intel.com/hddl"] == 1
    assert "/var/tmp" in mounts(result)
    assert result.pod_security_level == "privileged"  # a hostPath volume, whatever the mode


def test_intel_gpu_recipe_through_the_device_plugin() -> None:
    """docker run --device=/dev/dri openvino/model_server:latest-gpu --target_device GPU"""
    result = rendered(model(device={"targetDevice": "GPU"}))
    # --device=/dev/dri: the GPU plugin's resource hands over the render node and its grant.
    resources = server(result)["resources"]
    assert resources["limits"]["gpu.intel.com/i915"] == 1
    assert resources["requests"]["gpu.intel.com/i915"] == 1
    # the -gpu image: kubevino's GPU variant carries the Intel compute runtime.
    assert server(result)["image"].endswith("/runtime-gpu:0.1.0")
    # The default image's account is in the render group; ours gets it as a supplemental group.
    assert pod_spec(result)["securityContext"]["supplementalGroups"] == [110]
    assert "privileged" not in server(result)["securityContext"]
    assert result.pod_security_level == "restricted"


def test_intel_gpu_recipe_with_host_devices() -> None:
    """docker run --device=/dev/dri ... --target_device GPU, by mounting the node's /dev/dri"""
    result = rendered(
        model(device={"targetDevice": "GPU", "accessMode": "HostDevices"}), PRIVILEGE_ALLOWED
    )
    dri = mounts(result)["/dev/dri"]
    assert dri["volume"]["hostPath"] == {"path": "/dev/dri", "type": "Directory"}
    assert server(result)["securityContext"]["privileged"] is True
    assert pod_spec(result)["nodeSelector"] == {"intel.feature.node.kubernetes.io/gpu": "true"}
    assert _cgroup_rules("intel-gpu") == ["c 226:* rwm"]


def test_intel_gpu_recipe_with_explicit_user_and_render_group() -> None:
    """docker run --device=/dev/dri --group-add=$(stat -c %g /dev/dri/render*) -u uid:gid"""
    explicit = settings(runAsUser=1000, runAsGroup=1000, renderGroupId=44)
    result = rendered(model(device={"targetDevice": "GPU"}), explicit)
    context = pod_spec(result)["securityContext"]
    # -u $(id -u):$(id -g)
    assert (context["runAsUser"], context["runAsGroup"]) == (1000, 1000)
    # --group-add=<render GID>
    assert context["supplementalGroups"] == [44]


def test_render_group_comes_from_the_node_pool_the_model_selects() -> None:
    pools = settings(
        renderGroupId=110,
        renderGroupIdsByPool=[
            {"nodeSelector": {"pool": "arc"}, "gid": 992},
            {"nodeSelector": {"pool": "flex"}, "gid": 109},
        ],
    )
    on_arc = rendered(
        model(device={"targetDevice": "GPU"}, serving={"nodeSelector": {"pool": "arc"}}), pools
    )
    assert pod_spec(on_arc)["securityContext"]["supplementalGroups"] == [992]
    anywhere = rendered(model(device={"targetDevice": "GPU"}), pools)
    # A pod that may land on any pool gets every pool's GID.
    assert pod_spec(anywhere)["securityContext"]["supplementalGroups"] == [109, 110, 992]


def test_unknown_render_group_is_a_refusal_that_says_how_to_find_it() -> None:
    refused = refusal(model(device={"targetDevice": "GPU"}), settings())
    assert refused.reason == "RenderGroupUnknown"
    assert "stat -c %g /dev/dri/renderD128" in refused.message


def test_wsl2_gpu_recipe() -> None:
    """docker run --device=/dev/dxg --volume /usr/lib/wsl:/usr/lib/wsl --group-add=<render>
    -u uid:gid openvino/model_server:latest-gpu --target_device GPU"""
    result = rendered(
        model(
            device={
                "targetDevice": "GPU",
                "accelerators": ["intel-gpu-wsl2"],
                "accessMode": "HostDevices",
            }
        ),
        PRIVILEGE_ALLOWED,
    )
    by_path = mounts(result)
    # --device=/dev/dxg
    assert by_path["/dev/dxg"]["volume"]["hostPath"] == {"path": "/dev/dxg", "type": "CharDevice"}
    # --volume /usr/lib/wsl:/usr/lib/wsl (read-only: drivers, nothing to write)
    assert by_path["/usr/lib/wsl"]["volume"]["hostPath"]["path"] == "/usr/lib/wsl"
    assert by_path["/usr/lib/wsl"]["mount"]["readOnly"] is True
    env = {entry["name"]: entry.get("value") for entry in server(result)["env"]}
    assert env["LD_LIBRARY_PATH"] == "/usr/lib/wsl/lib"
    # --group-add=<render GID> -u uid:gid
    assert pod_spec(result)["securityContext"]["supplementalGroups"] == [110]
    assert pod_spec(result)["securityContext"]["runAsNonRoot"] is True
    assert "/dev/dri" not in by_path


def test_multi_myriad_cpu_recipe() -> None:
    """config.json {"target_device": "MULTI:MYRIAD,CPU", "batch_size": "1"} with --privileged
    -v /dev:/dev: the pod gets the union of the NCS2's and the CPU's access."""
    result = rendered(
        model(
            device={"targetDevice": "MULTI:MYRIAD,CPU", "accessMode": "HostDevices"},
            performance={"batchSize": 1},
        ),
        PRIVILEGE_ALLOWED,
    )
    config = model_server_config(result)
    assert config["target_device"] == "MULTI:MYRIAD,CPU"
    assert config["batch_size"] == "1"
    assert "/dev/bus/usb" in mounts(result)
    assert result.resolution.accelerators == ("ncs2", "cpu")
    assert server(result)["image"] == "openvino/model_server:2022.3"
    assert server(result)["args"][:2] == ["--config_path", "/config/config.json"]


def test_hetero_gpu_cpu_recipe() -> None:
    """config.json {"target_device": "HETERO:GPU,CPU", "batch_size": "1"}"""
    result = rendered(
        model(device={"targetDevice": "HETERO:GPU,CPU"}, performance={"batchSize": 1})
    )
    config = model_server_config(result)
    assert (config["target_device"], config["batch_size"]) == ("HETERO:GPU,CPU", "1")
    assert server(result)["resources"]["limits"] == {"gpu.intel.com/i915": 1}
    assert result.resolution.accelerators == ("intel-gpu", "cpu")


def test_auto_recipe_with_latency_and_throughput_hints() -> None:
    """docker run --device=/dev/dri --group-add=<render> -u uid:gid ...
    --plugin_config '{"PERFORMANCE_HINT": "LATENCY"}' --target_device AUTO (and THROUGHPUT)"""
    for hint in ("LATENCY", "THROUGHPUT"):
        result = rendered(
            model(
                device={"targetDevice": "AUTO", "accelerators": ["intel-gpu", "cpu"]},
                performance={"hint": hint},
            )
        )
        config = model_server_config(result)
        assert config["target_device"] == "AUTO"
        assert config["plugin_config"] == {"PERFORMANCE_HINT": hint}
        assert server(result)["resources"]["limits"] == {"gpu.intel.com/i915": 1}
        assert pod_spec(result)["securityContext"]["supplementalGroups"] == [110]


def test_bare_auto_uses_the_accelerators_the_settings_declare() -> None:
    cluster = settings(renderGroupId=110, defaultAccelerators=["intel-npu", "cpu"])
    result = rendered(model(device={"targetDevice": "AUTO"}), cluster)
    assert result.resolution.accelerators == ("intel-npu", "cpu")
    assert server(result)["resources"]["limits"] == {"npu.intel.com/accel": 1}


def test_nvidia_recipe() -> None:
    """docker run --gpus all openvino/model_server:latest-cuda --target_device NVIDIA"""
    result = rendered(model(device={"targetDevice": "NVIDIA"}))
    # --gpus all → the NVIDIA device plugin's resource
    assert server(result)["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert server(result)["image"] == "openvino/model_server:latest-cuda"
    assert result.resolution.runtime == "ModelServer"
    assert find(result, "Service")["spec"]["ports"][1]["name"] == "grpc"


def test_nvidia_has_no_host_device_route() -> None:
    refused = refusal(
        model(device={"targetDevice": "NVIDIA", "accessMode": "HostDevices"}), PRIVILEGE_ALLOWED
    )
    assert refused.reason == "AccessModeUnsupported"
    assert "nvidia.com/gpu" in refused.message
