"""The operator end to end on a cluster: the chart installed with helm, two InferenceModels (a
tensor classifier and a tiny chat LLM) applied, Ready awaited, and real clients through
``kubectl port-forward`` getting what in-process OpenVINO and OpenVINO GenAI compute.

Local: a throwaway ``kubevino dev-cluster``, whose node is this machine, so the model files are
written here. Existing: the cluster KUBECONFIG names; a Job writes the same (deterministic)
model files into a hostPath directory of one node, and the models are pinned to that node.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import openai
import openvino as ov
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
import yaml
from tests.harness.genai_reference import greedy_chat

from kubevino_common import __version__
from kubevino_devcluster.controlplane import REPO
from kubevino_devcluster.kubetools import KubeTools
from kubevino_devcluster.state import DEFAULT_DIRECTORY, read_state
from kubevino_runtime.demo_generative import LLAMA_FILE, write_llama_gguf
from kubevino_runtime.demo_model import INPUT_NAME, OUTPUT_NAME, sample_input, write_model

NAMESPACE = "kubevino-demo"
RELEASE = "kubevino"
OPERATOR_NAMESPACE = "kubevino-system"
CLASSIFIER = "classifier-dev"  # examples/source-host-path.yaml
CHAT = "tiny-chat"
CHAT_MODEL = "tiny-llama"
TOKENS = 16
MESSAGES: list[Any] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is the capital of france"},
]
RUNTIME_IMAGE = f"ghcr.io/kubevino/runtime:{__version__}"
# Where the Job puts the models on a node of an existing cluster (and removes them after).
NODE_MODELS = "/var/tmp/kubevino-demo-models"


class DemoError(RuntimeError):
    """A step did not do what the demo promises; the message says which and shows why."""


class Steps:
    """Numbered steps, each printed with its duration."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.number = 0

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.number += 1
        print(f"\n== [{self.number}] {title}", flush=True)
        began = time.monotonic()
        yield
        print(f"   ({time.monotonic() - began:.1f} s)", flush=True)

    def total(self) -> str:
        return f"{time.monotonic() - self.began:.0f} s"


def show(text: str) -> None:
    for line in text.rstrip().splitlines():
        print(f"   {line}")
    sys.stdout.flush()


def _kubevino(*args: str) -> int:
    """The kubevino CLI of this checkout, its output shown as it comes."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kubevino_operator.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        show(line)
    return process.wait()


# ---- the models -----------------------------------------------------------------------------
def write_demo_models(root: Path) -> tuple[Path, Path]:
    """The bundled classifier (Model Server's layout) and a tiny Llama GGUF, both made from
    fixed seeds, readable by the model pods' non-root user."""
    classifier = root / "classifier"
    write_model(classifier)
    llm = root / "llm"
    write_llama_gguf(llm)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return classifier, llm


def classifier_model(path: str, node: str | None) -> dict[str, Any]:
    """examples/source-host-path.yaml, its directory pointed at the demo's."""
    model: dict[str, Any] = yaml.safe_load(
        (REPO / "examples" / "source-host-path.yaml").read_text()
    )
    model["metadata"]["namespace"] = NAMESPACE
    model["spec"]["model"]["source"]["hostPath"]["path"] = path
    return _pinned(model, node)


def chat_model(path: str, node: str | None) -> dict[str, Any]:
    """A TextGeneration model on CPU with a small fixed KV cache (examples/text-generation.yaml
    is the same on a GPU with a real LLM)."""
    model: dict[str, Any] = {
        "apiVersion": "kubevino.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": CHAT, "namespace": NAMESPACE},
        "spec": {
            "model": {"name": CHAT_MODEL, "task": "TextGeneration",
                      "source": {"hostPath": {"path": path}}},
            "device": {"targetDevice": "CPU"},
            "generation": {"textGeneration": {"kvCacheSizeGB": 1}},
        },
    }  # fmt: skip
    return _pinned(model, node)


def _pinned(model: dict[str, Any], node: str | None) -> dict[str, Any]:
    if node is None:
        return model
    pinned = copy.deepcopy(model)
    pinned["spec"].setdefault("serving", {})["nodeSelector"] = {"kubernetes.io/hostname": node}
    return pinned


# ---- the demo on any cluster ----------------------------------------------------------------
def install_chart(tools: KubeTools) -> bool:
    """helm install the chart unless a release is there already; whether this demo installed it."""
    listed = tools.helm("list", "-n", OPERATOR_NAMESPACE, "-q").stdout.split()
    if RELEASE in listed:
        show(f"release {RELEASE} already installed in {OPERATOR_NAMESPACE}: using it")
        return False
    tools.helm(
        "install", RELEASE, "charts/kubevino", "--namespace", OPERATOR_NAMESPACE,
        "--create-namespace", "--wait", "--timeout", "300s",
    )  # fmt: skip
    show(tools.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE).stdout)
    return True


def apply_models(tools: KubeTools, models: list[dict[str, Any]]) -> None:
    for model in models:
        show(yaml.safe_dump(model, sort_keys=False))
        show(tools.kubectl("apply", "-f", "-", stdin=json.dumps(model)).stdout)


def wait_ready(tools: KubeTools) -> None:
    waited = tools.kubectl(
        "wait", "--for=condition=Ready", "inferencemodel", "--all", "-n", NAMESPACE,
        "--timeout=600s", check=False, timeout=630,
    )  # fmt: skip
    show(waited.stdout + waited.stderr)
    if waited.returncode != 0:
        described = tools.kubectl("describe", "inferencemodels", "-n", NAMESPACE, check=False)
        pods = tools.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide", check=False)
        raise DemoError(f"not Ready in 600 s:\n{described.stdout}\n{pods.stdout}")


def ask_classifier(tools: KubeTools, classifier: Path) -> None:
    image = sample_input()
    expected = ov.Core().compile_model(str(classifier / "1" / "model.xml"), "CPU")(image)[0]
    with tools.port_forward(NAMESPACE, f"service/{CLASSIFIER}", 8000, 9000) as (rest, grpc):
        show(f"kubectl port-forward service/{CLASSIFIER} :8000 :9000 -> 127.0.0.1:{rest}, :{grpc}")
        http_client = triton_http.InferenceServerClient(f"127.0.0.1:{rest}")
        tensor = triton_http.InferInput(INPUT_NAME, list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        over_rest = http_client.infer("classifier", [tensor]).as_numpy(OUTPUT_NAME)
        grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc}")
        grpc_tensor = triton_grpc.InferInput(INPUT_NAME, list(image.shape), "FP32")
        grpc_tensor.set_data_from_numpy(image)
        over_grpc = grpc_client.infer("classifier", [grpc_tensor]).as_numpy(OUTPUT_NAME)
    top = np.argsort(expected[0])[::-1][:5]
    probabilities = [round(float(p), 4) for p in expected[0][top]]
    show(f"top-5 classes: {top.tolist()} (p={probabilities})")
    for name, got in (("KServe REST (tritonclient)", over_rest),
                      ("KServe gRPC (tritonclient)", over_grpc)):  # fmt: skip
        same = bool(np.array_equal(got, expected))
        show(f"{name:27} equals in-process OpenVINO: {same}")
        if not same:
            raise DemoError(f"{name} answered differently from in-process OpenVINO")


def ask_chat(tools: KubeTools, llm: Path) -> None:
    found = json.loads(tools.kubectl("get", "inferencemodel", CHAT, "-n", NAMESPACE, "-o",
                                     "json").stdout)  # fmt: skip
    openai_url = found["status"]["endpoints"]["openai"]  # http://<service>:<port>/v3
    port = int(openai_url.rsplit(":", 1)[1].split("/")[0])
    expected = greedy_chat(llm / LLAMA_FILE, MESSAGES, TOKENS)
    with tools.port_forward(NAMESPACE, f"service/{CHAT}", port) as (local,):
        show(f"kubectl port-forward service/{CHAT} :{port} -> 127.0.0.1:{local}")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{local}/v3", api_key="unused")
        reply = client.chat.completions.create(
            model=CHAT_MODEL, messages=MESSAGES, max_tokens=TOKENS, temperature=0,
            extra_body={"ignore_eos": True},
        )  # fmt: skip
    text = reply.choices[0].message.content
    show(f"openai chat.completions ({TOKENS} tokens, greedy; random weights: gibberish): {text!r}")
    same = text == expected
    show(f"equals in-process OpenVINO GenAI: {same}")
    if not same:
        raise DemoError(f"the chat reply differs from in-process GenAI's {expected!r}")


def demo_on(
    tools: KubeTools,
    steps: Steps,
    place_models: Callable[[], tuple[str, str | None]],
    local_models: Path,
) -> bool:
    """The steps on a reachable cluster; whether the chart was installed by this demo."""
    with steps.step(f"helm install {RELEASE} charts/kubevino -n {OPERATOR_NAMESPACE}"):
        installed = install_chart(tools)
    tools.kubectl("create", "namespace", NAMESPACE)
    with steps.step("the models: the bundled classifier and a tiny Llama GGUF, on the node"):
        classifier, llm = write_demo_models(local_models)
        node_root, node = place_models()
        show(f"on the node: {node_root}/classifier, {node_root}/llm")
    with steps.step("kubectl apply: examples/source-host-path.yaml and a TextGeneration model"):
        apply_models(tools, [classifier_model(f"{node_root}/classifier", node),
                             chat_model(f"{node_root}/llm", node)])  # fmt: skip
    with steps.step(f"kubectl wait --for=condition=Ready inferencemodel --all -n {NAMESPACE}"):
        wait_ready(tools)
    with steps.step(f"kubectl get inferencemodels -o wide; kubectl describe inferencemodel "
                    f"{CLASSIFIER}"):  # fmt: skip
        show(tools.kubectl("get", "inferencemodels", "-n", NAMESPACE, "-o", "wide").stdout)
        print()
        show(tools.kubectl("describe", "inferencemodel", CLASSIFIER, "-n", NAMESPACE).stdout)
    with steps.step("tensor inference through port-forward, compared with in-process OpenVINO"):
        ask_classifier(tools, classifier)
    with steps.step("chat through port-forward (openai client), compared with in-process GenAI"):
        ask_chat(tools, llm)
    return installed


# ---- a throwaway local cluster --------------------------------------------------------------
def run_local(keep: bool) -> int:
    steps = Steps()
    directory = DEFAULT_DIRECTORY
    state = read_state(directory)
    if state is not None or (directory.exists() and any(directory.iterdir())):
        print(f"demo: a dev cluster is already in {directory} (kubevino dev-cluster status): "
              "stop it with `kubevino dev-cluster down`, or run the demo on it with "
              f"KUBECONFIG={directory}/kubeconfig scripts/demo.sh --cluster existing")  # fmt: skip
        return 1
    with steps.step("a throwaway local cluster: kubevino dev-cluster up"):
        if _kubevino("dev-cluster", "up", "--dir", str(directory)) != 0:
            _kubevino("dev-cluster", "down", "--dir", str(directory))
            return 1
    state = read_state(directory)
    assert state is not None
    tools = KubeTools(Path(state.kubeconfig), str(directory / "bin" / "kubectl"),
                      str(directory / "bin" / "helm"))  # fmt: skip
    models = directory / "demo-models"
    failed: Exception | None = None
    try:
        # The node is this machine: the files written here are the node's.
        demo_on(tools, steps, lambda: (str(models), None), models)
    except Exception as error:  # any failure is reported; the cluster still comes down
        failed = error
    finally:
        if keep:
            print(f"\n== left running (--keep), {steps.total()} so far:\n"
                  f"   export KUBECONFIG={state.kubeconfig} PATH={directory / 'bin'}:$PATH\n"
                  f"   kubectl get inferencemodels -n {NAMESPACE}\n"
                  f"   stop it: sudo .venv/bin/kubevino dev-cluster down")  # fmt: skip
        else:
            with steps.step("tear down: kubevino dev-cluster down"):
                if _kubevino("dev-cluster", "down", "--dir", str(directory)) != 0:
                    failed = failed or DemoError("the dev cluster did not stop cleanly")
    return _finish(steps, failed)


def _finish(steps: Steps, failed: Exception | None) -> int:
    if failed is not None:
        print(f"\ndemo FAILED after {steps.total()}: {type(failed).__name__}: {failed}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"\n== done in {steps.total()}")
    return 0


# ---- the cluster KUBECONFIG names -----------------------------------------------------------
def _tool(name: str) -> str | None:
    """A cached pinned binary, else the one on PATH."""
    cache = Path(os.environ.get("KUBEVINO_CACHE", Path.home() / ".cache" / "kubevino"))
    cached = sorted(cache.glob(f"bin-*/{name}"))
    return str(cached[-1]) if cached else shutil.which(name)


def _models_job(command: str, name: str, host_path: str, node: str | None = None) -> dict[str, Any]:
    """A Job in the runtime image running ``command`` with the node's ``host_path`` at /models
    (on ``node`` if given)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    **({"nodeName": node} if node else {}),
                    "containers": [{
                        "name": "models", "image": RUNTIME_IMAGE, "command": ["sh", "-c", command],
                        # root: the node's directory is root's; the model pods only read it.
                        "securityContext": {"runAsUser": 0, "runAsGroup": 0},
                        "volumeMounts": [{"name": "models", "mountPath": "/models"}],
                    }],
                    "volumes": [{"name": "models", "hostPath": {"path": host_path,
                                                                 "type": "DirectoryOrCreate"}}],
                }
            },
        },
    }  # fmt: skip


def _run_job(tools: KubeTools, job: dict[str, Any]) -> str:
    """Runs the Job to completion; the node its pod ran on."""
    name = job["metadata"]["name"]
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(job))
    waited = tools.kubectl("wait", "--for=condition=Complete", f"job/{name}", "-n", NAMESPACE,
                           "--timeout=300s", check=False, timeout=330)  # fmt: skip
    if waited.returncode != 0:
        logs = tools.kubectl("logs", f"job/{name}", "-n", NAMESPACE, check=False)
        raise DemoError(f"job {name} did not complete: {waited.stderr}{logs.stdout}{logs.stderr}")
    return tools.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"job-name={name}", "-o",
                         "jsonpath={.items[0].spec.nodeName}").stdout.strip()  # fmt: skip


def run_existing(keep: bool) -> int:
    steps = Steps()
    kubeconfig = os.environ.get("KUBECONFIG")
    kubectl, helm = _tool("kubectl"), _tool("helm")
    if not kubeconfig or kubectl is None or helm is None:
        print("demo --cluster existing: needs KUBECONFIG set to your cluster and kubectl and helm "
              "(on PATH, or built by scripts/kube-bins.sh)", file=sys.stderr)  # fmt: skip
        return 2
    tools = KubeTools(Path(kubeconfig), kubectl, helm)
    with steps.step(f"reach the cluster of KUBECONFIG={kubeconfig}"):
        reached = tools.kubectl("get", "--raw", "/readyz", check=False, timeout=30)
        if reached.returncode != 0:
            print(f"demo: cannot reach that cluster: {reached.stderr.strip()}", file=sys.stderr)
            return 1
        show(tools.kubectl("get", "nodes", "-o", "wide").stdout)
        show(f"its nodes must be able to run {RUNTIME_IMAGE} and the chart's operator image")
    if tools.kubectl("get", "namespace", NAMESPACE, check=False).returncode == 0:
        print(f"demo: namespace {NAMESPACE} exists already: delete it first", file=sys.stderr)
        return 1
    failed: Exception | None = None
    released_before = RELEASE in tools.helm("list", "-n", OPERATOR_NAMESPACE, "-q").stdout.split()
    nodes: list[str] = []  # where the models went
    with tempfile.TemporaryDirectory(prefix="kubevino-demo-") as scratch:

        def place_models() -> tuple[str, str | None]:
            writer = ("kubevino-demo-model /models/classifier && "
                      "kubevino-demo-generative /models/generative && "
                      "mv /models/generative/llm /models/llm && rm -rf /models/generative && "
                      "chmod -R a+rX /models")  # fmt: skip
            node = _run_job(tools, _models_job(writer, "demo-models", NODE_MODELS))
            nodes.append(node)
            show(f"written by job/demo-models ({RUNTIME_IMAGE}) on node {node}")
            return NODE_MODELS, node

        try:
            demo_on(tools, steps, place_models, Path(scratch))
        except Exception as error:  # reported; what the demo made is still removed
            failed = error
    if keep:
        print(f"\n== left in place (--keep): namespace {NAMESPACE}, {NODE_MODELS} on the node; "
              f"kubectl delete namespace {NAMESPACE} removes the models")  # fmt: skip
        return _finish(steps, failed)
    with steps.step(f"clean up: models off the node, namespace {NAMESPACE}, the release"):
        for node in nodes:
            parent, _, directory = NODE_MODELS.rpartition("/")
            cleanup = _models_job(
                f"rm -rf /models/{directory}", "demo-models-cleanup", parent, node
            )
            try:
                _run_job(tools, cleanup)
            except DemoError as error:
                failed = failed or error
        tools.kubectl("delete", "namespace", NAMESPACE, "--wait=true", check=False, timeout=300)
        if not released_before:
            tools.helm("uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait")
            tools.kubectl("delete", "namespace", OPERATOR_NAMESPACE, check=False, timeout=300)
    return _finish(steps, failed)
