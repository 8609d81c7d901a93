"""Where a container started by hand has each family's device nodes, when no operator says."""

from __future__ import annotations

from pathlib import Path

from kubevino_runtime.deviceaccess import standard_device_paths


def test_gpu_is_looked_for_under_dri_and_npu_under_accel(tmp_path: Path) -> None:
    assert standard_device_paths(["GPU", "NPU", "CPU"], tmp_path) == {
        "GPU": str(tmp_path / "dev/dri"),
        "NPU": str(tmp_path / "dev/accel"),
    }


def test_under_wsl2_the_gpu_is_dxg_unless_drm_nodes_exist_too(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/dxg").touch()
    assert standard_device_paths(["GPU"], tmp_path) == {"GPU": str(tmp_path / "dev/dxg")}
    (tmp_path / "dev/dri").mkdir()
    assert standard_device_paths(["GPU"], tmp_path) == {"GPU": str(tmp_path / "dev/dri")}


def test_families_without_a_standard_node_are_not_looked_for(tmp_path: Path) -> None:
    assert standard_device_paths(["CPU", "MYRIAD", "HDDL", "NVIDIA"], tmp_path) == {}
