"""The images a platform team deploys: built from the one Dockerfile, run the way a cluster
runs them (read-only root, no capabilities, non-root), answering real clients."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import openvino as ov
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from kubevino_devcluster.controlplane import REPO
from kubevino_devcluster.images import ISOLATED, TARGETS, podman, serving_container
from kubevino_runtime.demo_model import sample_input, write_model

pytestmark = pytest.mark.images


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image-models")
    write_model(root / "classifier")
    root.chmod(0o755)  # the image's user (10001) reads it through the bind mount
    return root


@pytest.fixture(scope="module")
def served(images: dict[str, str], model_root: Path) -> Iterator[tuple[str, str, str]]:
    """The runtime image serving the bundled model; yields (REST URL, gRPC address, name)."""
    args = ["--model_name", "classifier", "--model_path", "/models/classifier"]
    with serving_container(images["runtime"], model_root, args) as container:
        yield container.rest, container.grpc, container.name


@pytest.fixture(scope="module")
def expected(model_root: Path) -> npt.NDArray[Any]:
    compiled = ov.Core().compile_model(str(model_root / "classifier" / "1" / "model.xml"), "CPU")
    result: npt.NDArray[Any] = compiled(sample_input())[0]
    return result


def test_the_runtime_image_answers_kserve_clients_like_in_process_openvino(
    served: tuple[str, str, str], expected: npt.NDArray[Any]
) -> None:
    rest, grpc_address, _ = served
    image = sample_input()
    http_client = triton_http.InferenceServerClient(rest.removeprefix("http://"))
    tensor = triton_http.InferInput("input", list(image.shape), "FP32")
    tensor.set_data_from_numpy(image)
    answer = http_client.infer("classifier", [tensor]).as_numpy("probabilities")
    np.testing.assert_array_equal(answer, expected)
    grpc_client = triton_grpc.InferenceServerClient(grpc_address)
    grpc_tensor = triton_grpc.InferInput("input", list(image.shape), "FP32")
    grpc_tensor.set_data_from_numpy(image)
    answer = grpc_client.infer("classifier", [grpc_tensor]).as_numpy("probabilities")
    np.testing.assert_array_equal(answer, expected)


def test_the_runtime_image_answers_tf_serving_rest(
    served: tuple[str, str, str], expected: npt.NDArray[Any]
) -> None:
    rest, _, _ = served
    reply = httpx.post(
        f"{rest}/v1/models/classifier:predict", json={"instances": sample_input().tolist()}
    )
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(np.array(reply.json()["predictions"]), expected, rtol=1e-6)


def test_the_image_health_check_passes_on_a_serving_container(
    served: tuple[str, str, str],
) -> None:
    _, _, name = served
    # `podman healthcheck run` executes the image's HEALTHCHECK inside the container.
    assert podman("healthcheck", "run", name, check=False).returncode == 0


@pytest.mark.parametrize("target", TARGETS)
def test_images_run_as_a_fixed_non_root_user_with_oci_labels_and_a_health_check(
    images: dict[str, str], target: str
) -> None:
    inspected = json.loads(podman("image", "inspect", images[target]).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == f"kubevino-{target}"
    assert labels["org.opencontainers.image.version"] == images[target].rsplit(":", 1)[1]
    assert len(labels["org.opencontainers.image.revision"]) == 40
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert inspected["Healthcheck"]["Test"][0] == "CMD"


@pytest.mark.parametrize("target", TARGETS)
def test_final_images_carry_no_installer_and_no_compiler(
    images: dict[str, str], target: str
) -> None:
    found = podman(
        "run",
        "--rm",
        *ISOLATED,
        "--entrypoint",
        "sh",
        images[target],
        "-c",
        "for tool in pip pip3 gcc cc c++ make ld strip; do command -v $tool; done;"
        " python3 -m pip --version 2>/dev/null; true",
    ).stdout
    assert found.strip() == ""


_PACKAGES_AND_SCRIPTS = """
import importlib.util, shutil, sys
import PACKAGE
print(sorted({m.split(".")[0] for m in sys.modules if m.startswith("kubevino")}))
print(sorted(p for p in ("kubevino_common", "kubevino_operator", "kubevino_runtime")
             if importlib.util.find_spec(p)))
print(sorted(s for s in ("kubevino", "kubevino-serve", "kubevino-fetch") if shutil.which(s)))
"""


@pytest.mark.parametrize(
    ("target", "package", "installed", "scripts"),
    [
        ("operator", "kubevino_operator", ["kubevino_common", "kubevino_operator"], ["kubevino"]),
        (
            "runtime",
            "kubevino_runtime",
            ["kubevino_common", "kubevino_runtime"],
            ["kubevino-fetch", "kubevino-serve"],
        ),
        (
            "runtime-gpu",
            "kubevino_runtime",
            ["kubevino_common", "kubevino_runtime"],
            ["kubevino-fetch", "kubevino-serve"],
        ),
    ],
)
def test_each_image_carries_its_own_side_and_the_shared_grammar_only(
    images: dict[str, str], target: str, package: str, installed: list[str], scripts: list[str]
) -> None:
    found = podman(
        "run",
        "--rm",
        *ISOLATED,
        "--entrypoint",
        "python3",
        images[target],
        "-c",
        _PACKAGES_AND_SCRIPTS.replace("PACKAGE", package),
    ).stdout.splitlines()
    loaded, present, commands = (json.loads(line.replace("'", '"')) for line in found)
    assert loaded == sorted({package, "kubevino_common"})
    assert present == installed
    assert commands == scripts


def test_the_operator_image_renders_exactly_what_the_local_cli_renders(
    images: dict[str, str],
) -> None:
    in_image = podman(
        "run",
        "--rm",
        *ISOLATED,
        "--volume",
        f"{REPO / 'examples'}:/examples:ro",
        images["operator"],
        "render",
        "-f",
        "/examples/gpu.yaml",
        "--settings",
        "/examples/settings.yaml",
    ).stdout
    local = subprocess.run(
        ["kubevino", "render", "-f", "examples/gpu.yaml", "--settings", "examples/settings.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert in_image == local


def test_the_gpu_image_carries_the_gpu_user_space_and_the_cpu_image_does_not(
    images: dict[str, str],
) -> None:
    probe = (
        "import ctypes, json, pathlib, openvino as ov;"
        "libs = pathlib.Path(ov.__file__).parent / 'libs';"
        "loads = {}\n"
        "for name in ('libOpenCL.so.1', 'libze_loader.so.1'):\n"
        "    try: ctypes.CDLL(name); loads[name] = True\n"
        "    except OSError: loads[name] = False\n"
        "print(json.dumps({'gpu_plugin': (libs / 'libopenvino_intel_gpu_plugin.so').exists(),"
        " 'npu_plugin': (libs / 'libopenvino_intel_npu_plugin.so').exists(),"
        " 'intel_icd': pathlib.Path('/etc/OpenCL/vendors/intel.icd').exists(),"
        " 'loads': loads, 'devices': ov.Core().available_devices}))"
    )

    def facts(target: str) -> dict[str, Any]:
        out = podman(
            "run", "--rm", *ISOLATED, "--entrypoint", "python3", images[target], "-c", probe
        ).stdout
        parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return parsed

    gpu = facts("runtime-gpu")
    assert gpu["gpu_plugin"] and gpu["npu_plugin"] and gpu["intel_icd"]
    assert gpu["loads"] == {"libOpenCL.so.1": True, "libze_loader.so.1": True}
    assert "CPU" in gpu["devices"]  # no GPU on this machine: the plugin loads, finds none
    cpu = facts("runtime")
    assert not cpu["gpu_plugin"] and not cpu["npu_plugin"]
    assert cpu["devices"] == ["CPU"]
