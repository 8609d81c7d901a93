"""A real node for the control plane: containerd + runc + CNI bridge + kubelet + kube-proxy,
in the node's own network namespace and mount namespace, with their own directories, pod
range and cgroup root. Several run side by side on one host.

Teardown leaves nothing: leftover tasks killed, processes stopped by pid, leftover shims of
this containerd stopped, what the node mounted unmounted inside its mount namespace (which then
goes), its pods' network namespaces deleted, its cgroup root removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kubevino_devcluster.cgroups import cgroup_root
from kubevino_devcluster.controlplane import ControlPlane, containerd_binaries, write_kubeconfig
from kubevino_devcluster.mountns import MountNamespace, mount_namespace
from kubevino_devcluster.netns import CLUSTER_POD_RANGE, NodeNetwork
from kubevino_devcluster.processes import stop_process

PAUSE_IMAGE = "kubevino.local/pause:1"
CNI_BIN = "/usr/lib/cni"
# Host paths every kubelet uses whatever its --root-dir: each node sees its own directory there.
VAR_LIB_KUBELET = Path("/var/lib/kubelet")
VAR_LOG_PODS = Path("/var/log/pods")
VAR_LOG_CONTAINERS = Path("/var/log/containers")
NODE_OWN_PATHS = {
    VAR_LIB_KUBELET: "var-lib-kubelet",
    VAR_LOG_PODS: "log/pods",
    VAR_LOG_CONTAINERS: "log/containers",
}
NODE_DEBIAN_PACKAGES = ("runc", "containernetworking-plugins", "iptables")
# The pause program: waits for a signal. Built once with the machine's Go toolchain.
PAUSE_SOURCE = """package main

import (
\t"os"
\t"os/signal"
\t"syscall"
)

func main() {
\tsignals := make(chan os.Signal, 1)
\tsignal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
\t<-signals
}
"""


def cache_directory() -> Path:
    return Path(os.environ.get("KUBEVINO_CACHE", Path.home() / ".cache" / "kubevino"))


def ensure_node_packages() -> None:
    """The node's Debian packages are installed by scripts/system-packages.sh before any test
    runs (a test inside its network namespace cannot reach the package mirror); here they are
    only checked, so a missing one fails with what to run instead of a resolver error."""
    missing = [
        binary
        for binary in ("runc", f"{CNI_BIN}/bridge", "iptables")
        if not (Path(binary).exists() or _which(binary))
    ]
    if missing:
        raise RuntimeError(
            f"the node tier needs {', '.join(missing)}: run scripts/system-packages.sh as root "
            f"(scripts/test.sh does) to install {' '.join(NODE_DEBIAN_PACKAGES)}"
        )


def _which(name: str) -> bool:
    return any(
        (Path(directory) / name).exists() for directory in os.environ["PATH"].split(os.pathsep)
    )


def pause_archive() -> Path:
    """A docker-archive of the pause image, made once per cache (no registry needed)."""
    archive = cache_directory() / "pause-1" / "pause.tar"
    if archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    work = archive.parent / f"build-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    (work / "main.go").write_text(PAUSE_SOURCE)
    environment = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    subprocess.run(["go", "mod", "init", "kubevino.local/pause"], cwd=work, check=True,
                   capture_output=True, env=environment)  # fmt: skip
    subprocess.run(["go", "build", "-ldflags", "-s -w", "-o", "pause", "."], cwd=work,
                   check=True, capture_output=True, env=environment)  # fmt: skip
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(str(work / "pause"), arcname="pause")
        info.uid = info.gid = 0
        info.mtime = 0
        with (work / "pause").open("rb") as binary:
            tar.addfile(info, binary)
    layer_bytes = layer.getvalue()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_sha256(layer_bytes)}"]},
    }
    config_bytes = json.dumps(config).encode()
    manifest = [{"Config": "config.json", "RepoTags": [PAUSE_IMAGE], "Layers": ["layer.tar"]}]
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, mode="w") as tar:
        for name, data in (
            ("layer.tar", layer_bytes),
            ("config.json", config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    partial.rename(archive)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    return archive


@contextmanager
def host_mount_points(extra: Sequence[Path] = ()) -> Iterator[None]:
    """The host paths nodes mount their own directories on (``NODE_OWN_PATHS`` and ``extra``),
    made where missing and removed afterwards if made here; those already there stay untouched
    on the host."""
    made = []
    try:
        for path in [*NODE_OWN_PATHS, *extra]:
            if not path.exists():
                path.mkdir(parents=True)
                made.append(path)
        yield
    finally:
        for path in reversed(made):
            shutil.rmtree(path, ignore_errors=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# containerd 2 (config version 3): CDI on, its spec directory the node's own, so that the
# test DRA driver's devices reach containers; the sandbox image is our pause image.
CONTAINERD_CONFIG = """\
version = 3
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.erofs"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{pause}"
[plugins."io.containerd.cri.v1.runtime"]
  # No CAP_SYS_RESOURCE on these machines: without it every sandbox fails to start.
  restrict_oom_score_adj = true
  enable_cdi = true
  cdi_spec_dirs = ["{cdi}"]
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      SystemdCgroup = false
"""


@dataclass
class Node:
    directory: Path
    plane: ControlPlane
    network: NodeNetwork
    name: str = "kv-node"
    # One path, the same on every node, under which each node shows its own ``devices``
    # (operator setting deviceRoot, chart value nodeAgent.deviceRoot); None: no such path.
    device_root: Path | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    mounts: MountNamespace | None = None
    cgroup_root: str = ""
    _resources: ExitStack = field(default_factory=ExitStack)

    @property
    def ip(self) -> str:
        return self.network.ip

    @property
    def devices(self) -> Path:
        """This node's own device directory on the host (seen inside as ``device_root``)."""
        return self.directory / "dev"

    @property
    def socket(self) -> Path:
        return self.directory / "containerd" / "containerd.sock"

    @property
    def cdi_directory(self) -> Path:
        """Where CDI specs for this node's containerd go (a DRA driver writes them)."""
        return self.directory / "cdi"

    @property
    def kubelet_root(self) -> Path:
        return self.directory / "kubelet"

    def inside(self, *args: str, cwd: Path | None = None) -> list[str]:
        """A command line that runs ``args`` on this node: its mount and network namespaces
        (a device plugin must, to reach the node's /var/lib/kubelet/device-plugins)."""
        if self.mounts is None:
            raise RuntimeError(f"node {self.name} is not running")
        return self.mounts.command(args, network=self.network.namespace.path, cwd=cwd)

    def _start(
        self, name: str, command: list[str], environment: dict[str, str] | None = None
    ) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self.inside(*command, cwd=self.directory),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=environment,
        )

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")[-6000:]

    def _ctr(self, *args: str) -> list[str]:
        ctr = str(containerd_binaries() / "ctr")
        return [ctr, "--address", str(self.socket), "--namespace", "k8s.io", *args]

    def ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._ctr(*args), capture_output=True, text=True, check=True, timeout=timeout
        )

    def import_image(self, archive: Path) -> None:
        self.ctr("images", "import", "--no-unpack=false", str(archive))

    def _binds(self) -> list[tuple[Path, Path]]:
        binds = []
        for host_path, own in NODE_OWN_PATHS.items():
            (self.directory / own).mkdir(parents=True, exist_ok=True)
            binds.append((self.directory / own, host_path))
        if self.device_root is not None:
            binds.append((self.devices, self.device_root))
        return binds

    def start(self) -> None:
        """Containerd, kubelet and kube-proxy up and the node Ready. The host paths in
        ``NODE_OWN_PATHS`` and ``device_root`` must exist (``host_mount_points``)."""
        ensure_node_packages()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.devices.mkdir(exist_ok=True)
        self.devices.chmod(0o755)
        self.cgroup_root = self._resources.enter_context(
            cgroup_root(f"kubevino-{self.name}-{uuid.uuid4().hex[:6]}")
        )
        self.mounts = self._resources.enter_context(mount_namespace(self._binds()))
        self._start_containerd()
        self.import_image(pause_archive())
        self._start_kubelet()
        self._start_kube_proxy()
        self.wait_ready()

    def _start_containerd(self) -> None:
        base = self.directory / "containerd"
        cni_conf = self.directory / "cni"
        for directory in (base, cni_conf, self.cdi_directory):
            directory.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-kubevino-e2e.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": "kubevino-e2e",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "kvbr0",
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": self.network.pod_range}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.directory / "cni-ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                }
            )
        )
        config = base / "config.toml"
        config.write_text(
            CONTAINERD_CONFIG.format(
                root=base / "root",
                state=base / "state",
                socket=self.socket,
                pause=PAUSE_IMAGE,
                cni_bin=CNI_BIN,
                cni_conf=cni_conf,
                cdi=self.cdi_directory,
            )
        )
        binaries = containerd_binaries()
        # containerd starts the shim it finds first in PATH: this version's, never an older one.
        environment = {**os.environ, "PATH": f"{binaries}:{os.environ.get('PATH', '')}"}
        self._start(
            "containerd", [str(binaries / "containerd"), "--config", str(config)], environment
        )
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.processes["containerd"].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start:\n{self.log('containerd')}")
            time.sleep(0.2)

    def _kubeconfig(self) -> Path:
        path = self.directory / "node.kubeconfig"
        pki = self.plane.directory / "pki"
        write_kubeconfig(
            path,
            f"https://{self.plane.node_ip or self.ip}:{self.plane.api_port}",
            pki / "ca.crt",
            pki / "admin.crt",
            pki / "admin.key",
        )
        return path

    def _start_kubelet(self) -> None:
        resolv = self.directory / "resolv.conf"
        resolv.write_text(f"nameserver {self.ip}\n")  # nothing answers; nothing leaves
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            # kubepods of its own: another kubelet on this host has one too.
            "cgroupRoot": self.cgroup_root,
            "failSwapOn": False,
            # These machines mount cgroup v1; from v1.35 the kubelet refuses to start there
            # unless told not to (the field exists, default false, in v1.34).
            "failCgroupV1": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "resolvConf": str(resolv),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.plane.directory / "pki" / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "address": self.ip,
            "healthzBindAddress": "127.0.0.1",
            "readOnlyPort": 0,
            # The machine's disks may be nearly full; that must not evict test pods.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
            "nodeStatusUpdateFrequency": "4s",
        }
        config_path = self.directory / "kubelet.json"
        config_path.write_text(json.dumps(config))
        self._start(
            "kubelet",
            [
                self.plane.binary("kubelet"),
                "--config",
                str(config_path),
                "--kubeconfig",
                str(self._kubeconfig()),
                "--root-dir",
                str(self.directory / "kubelet"),
                "--cert-dir",
                str(self.directory / "kubelet-pki"),
                "--hostname-override",
                self.name,
                "--node-ip",
                self.ip,
            ],
        )

    def _start_kube_proxy(self) -> None:
        self._start(
            "kube-proxy",
            [
                self.plane.binary("kube-proxy"),
                "--kubeconfig",
                str(self._kubeconfig()),
                "--hostname-override",
                self.name,
                "--proxy-mode",
                "iptables",
                "--cluster-cidr",
                CLUSTER_POD_RANGE,
                "--bind-address",
                self.ip,
                "--metrics-bind-address",
                "127.0.0.1:10249",
                "--healthz-bind-address",
                "127.0.0.1:10256",
                # conntrack limits are the machine's, not this namespace's to change.
                "--conntrack-max-per-core",
                "0",
                "--conntrack-tcp-timeout-established",
                "0",
                "--conntrack-tcp-timeout-close-wait",
                "0",
            ],
        )

    def wait_ready(self, timeout: float = 120) -> None:
        query = '{.status.conditions[?(@.type=="Ready")].status}'
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in ("containerd", "kubelet", "kube-proxy"):
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.log(name)}")
            done = self.plane.kubectl(
                "get", "node", self.name, "-o", f"jsonpath={query}", check=False
            )
            if done.stdout.strip() == "True":
                return
            time.sleep(0.5)
        raise RuntimeError(f"node not Ready in {timeout} s:\n{self.log('kubelet')}")

    # ---- teardown --------------------------------------------------------------------
    def stop(self) -> None:
        """Everything of this node gone. Its pods are best deleted through the API first
        (``DevCluster`` does, for all nodes at once); what is left is killed here."""
        try:
            for name in ("kube-proxy", "kubelet"):
                self._stop_process(name)
            self._stop_leftover_tasks()
            self._stop_process("containerd")
            self._stop_shims()
            self._unmount_and_delete_pod_network_namespaces()
        finally:
            self._resources.close()  # the mount namespace, then the cgroup root
            self.mounts = None

    def tasks(self) -> list[str]:
        """IDs of the containers this node's containerd runs."""
        try:
            listed = self.ctr("tasks", "ls", "--quiet", timeout=20).stdout
        except (subprocess.SubprocessError, OSError):
            return []
        return [line for line in listed.split() if line]

    def _stop_leftover_tasks(self) -> None:
        if self.processes.get("containerd") is None:
            return
        for task in self.tasks():
            subprocess.run(
                self._ctr("tasks", "kill", "--signal", "SIGKILL", task),
                capture_output=True, check=False, timeout=20,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while self.tasks() and time.monotonic() < deadline:
            time.sleep(0.5)
        for task in self.tasks():
            subprocess.run(
                self._ctr("tasks", "delete", "--force", task),
                capture_output=True, check=False, timeout=20,
            )  # fmt: skip

    def _stop_process(self, name: str) -> None:
        stop_process(self.processes.pop(name, None))

    def _stop_shims(self) -> None:
        """Shims outlive containerd by design; ours name our socket on their command line."""
        marker = str(self.socket).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in command and marker in command:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount_and_delete_pod_network_namespaces(self) -> None:
        """containerd pins each pod's network namespace on /run/netns/cni-<id>, mounted inside
        this node's mount namespace only: the host sees an empty file to remove."""
        if self.mounts is None:
            return
        pinned = [m for m in self.mounts.mount_points() if m.startswith("/run/netns/cni-")]
        self.mounts.unmount_under([str(self.directory.resolve()), *pinned])
        for path in pinned:
            Path(path).unlink(missing_ok=True)
