"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager,
scheduler — pinned upstream binaries from scripts/kube-bins.sh, started and stopped by pid.

Used by the cluster test tier, and inside every cluster of ``kubevino dev-cluster``.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kubevino_devcluster.ports import free_port, free_ports
from kubevino_devcluster.processes import stop_process

REPO = Path(__file__).resolve().parents[2]
SERVICE_CIDR = "10.0.0.0/16"  # room for thousands of Services (the scale bench)


@functools.cache
def kube_binaries() -> Path:
    """The cached binaries, built first when missing (minutes on a cold cache)."""
    done = subprocess.run([str(REPO / "scripts" / "kube-bins.sh")], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"scripts/kube-bins.sh failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    return Path(done.stdout.strip().splitlines()[-1])


def kube_binaries_cached() -> bool:
    """Whether every pinned binary is built already (else the first start builds Kubernetes
    from source: minutes)."""
    script = REPO / "scripts" / "kube-bins.sh"
    return subprocess.run([str(script), "--cached"], capture_output=True).returncode == 0


def pinned_version(name: str) -> str:
    """A version pinned in scripts/versions.env (``KUBE_VERSION``), or its KUBEVINO_ override."""
    override = os.environ.get(f"KUBEVINO_{name}")
    if override:
        return override
    for line in (REPO / "scripts" / "versions.env").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == name:
            return value.strip()
    raise KeyError(f"scripts/versions.env pins no {name}")


def containerd_binaries() -> Path:
    """containerd 2 with its shim and ctr, built by scripts/kube-bins.sh beside the rest."""
    return kube_binaries().parent / f"containerd-{pinned_version('CONTAINERD_VERSION')}"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path, extra_ips: tuple[str, ...] = ()) -> None:
    """A CA, the API server's serving cert, an admin client cert, the service-account keys."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=kubevino-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=directory,
    )
    sans = ",".join(
        [
            "IP:127.0.0.1",
            "IP:10.0.0.1",
            *(f"IP:{ip}" for ip in extra_ips),
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    for name, subject, extension in (
        ("apiserver", "/CN=kube-apiserver", f"subjectAltName={sans}"),
        ("admin", "/O=system:masters/CN=kubevino-admin", "extendedKeyUsage=clientAuth"),
    ):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=directory,
        )
        (directory / f"{name}.ext").write_text(extension + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
            cwd=directory,
        )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=directory)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)


def write_kubeconfig(
    path: Path, server: str, ca: Path, cert: Path | None, key: Path | None, token: str | None = None
) -> None:
    user: dict[str, str] = {}
    if cert and key:
        user = {"client-certificate": str(cert), "client-key": str(key)}
    if token:
        user = {"token": token}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "user"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2))


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
{reads}  - level: None
"""


def audit_policy(readers: tuple[str, ...]) -> str:
    """Every write is audited; reads only for the users named (a benchmark counting them)."""
    reads = (
        f"  - level: Metadata\n    users: {json.dumps(list(readers))}\n    verbs: [get, list]\n"
        if readers
        else ""
    )
    return AUDIT_POLICY.format(reads=reads)


@dataclass
class ControlPlane:
    directory: Path
    binaries: Path
    api_port: int = 0
    # Set for the node tier: the API server listens on every address of its network
    # namespace and advertises this one, so pods reach it through the kubernetes Service.
    node_ip: str | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Users whose reads the audit log records too (writes are always recorded).
    audited_readers: tuple[str, ...] = ()

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.directory / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.directory / "audit.log"

    def binary(self, name: str) -> str:
        return str(self.binaries / name)

    def _start(self, name: str, args: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [self.binary(name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")[-4000:]

    def start(self) -> None:
        certs = self.directory / "pki"
        make_certificates(certs, (self.node_ip,) if self.node_ip else ())
        etcd_port, peer_port, self.api_port = free_ports(3)
        self._start(
            "etcd",
            [
                "--data-dir",
                str(self.directory / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
            ],
        )
        (self.directory / "audit-policy.yaml").write_text(audit_policy(self.audited_readers))
        self._start_apiserver(certs, etcd_port)
        write_kubeconfig(
            self.admin_kubeconfig,
            self.server,
            certs / "ca.crt",
            certs / "admin.crt",
            certs / "admin.key",
        )
        self.wait_ready()
        self._start(
            "kube-controller-manager",
            [
                *self._component_flags(),
                "--service-account-private-key-file",
                str(certs / "sa.key"),
                "--root-ca-file",
                str(certs / "ca.crt"),
                "--use-service-account-credentials=false",
                "--controllers",
                "*",
                "--concurrent-gc-syncs",
                "5",
            ],
        )
        self._start("kube-scheduler", self._component_flags())

    def _component_flags(self) -> list[str]:
        """What controller-manager and scheduler share: admin credentials, one instance,
        serving only on loopback."""
        kubeconfig = str(self.admin_kubeconfig)
        return [
            "--kubeconfig",
            kubeconfig,
            "--authentication-kubeconfig",
            kubeconfig,
            "--authorization-kubeconfig",
            kubeconfig,
            "--leader-elect=false",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            str(free_port()),
        ]

    def _address_flags(self, certs: Path) -> list[str]:
        if self.node_ip is None:
            return [
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                # Loopback is refused as an endpoint from v1.37 on; pods need no
                # kubernetes Service without a node.
                "--endpoint-reconciler-type",
                "none",
            ]
        return [
            "--bind-address",
            "0.0.0.0",
            "--advertise-address",
            self.node_ip,
            # logs, exec and port-forward go to the kubelet, with the admin identity.
            "--kubelet-client-certificate",
            str(certs / "admin.crt"),
            "--kubelet-client-key",
            str(certs / "admin.key"),
            "--kubelet-preferred-address-types",
            "InternalIP",
        ]

    def _start_apiserver(self, certs: Path, etcd_port: int) -> None:
        self._start(
            "kube-apiserver",
            [
                "--etcd-servers",
                f"http://127.0.0.1:{etcd_port}",
                "--secure-port",
                str(self.api_port),
                *self._address_flags(certs),
                "--tls-cert-file",
                str(certs / "apiserver.crt"),
                "--tls-private-key-file",
                str(certs / "apiserver.key"),
                "--client-ca-file",
                str(certs / "ca.crt"),
                "--service-account-key-file",
                str(certs / "sa.pub"),
                "--service-account-signing-key-file",
                str(certs / "sa.key"),
                "--service-account-issuer",
                "https://kubernetes.default.svc",
                "--authorization-mode",
                "Node,RBAC",
                "--service-cluster-ip-range",
                SERVICE_CIDR,
                "--allow-privileged=true",
                "--audit-policy-file",
                str(self.directory / "audit-policy.yaml"),
                "--audit-log-path",
                str(self.audit_log),
                "--audit-log-format",
                "json",
                "--audit-log-mode",
                "blocking",
            ],
        )
        self._certs = certs
        self._etcd_port = etcd_port

    def restart_apiserver(self) -> None:
        self._stop("kube-apiserver")
        self._start_apiserver(self._certs, self._etcd_port)
        self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        context = ssl.create_default_context(cafile=str(self.directory / "pki" / "ca.crt"))
        context.load_cert_chain(
            str(self.directory / "pki" / "admin.crt"), str(self.directory / "pki" / "admin.key")
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes["kube-apiserver"]
            if process.poll() is not None:
                raise RuntimeError(f"kube-apiserver exited:\n{self.log('kube-apiserver')}")
            try:
                with urllib.request.urlopen(
                    f"{self.server}/readyz", context=context, timeout=5
                ) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"kube-apiserver not ready:\n{self.log('kube-apiserver')}")

    def _stop(self, name: str) -> None:
        stop_process(self.processes.pop(name, None))

    def stop_controllers(self) -> None:
        """Nothing recreates deleted pods any more (a cluster being torn down)."""
        self._stop("kube-controller-manager")

    def stop(self) -> None:
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            self._stop(name)

    def install_crds(self, timeout: float = 60) -> None:
        """Apply crds/ and wait until the API server serves them.

        Polled rather than `kubectl wait`: right after the apply the CRD may have no
        conditions yet, and kubectl wait then fails instead of waiting.
        """
        self.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        query = '{.status.conditions[?(@.type=="Established")].status}'
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.kubectl(
                "get", "crd/inferencemodels.kubevino.io", "-o", f"jsonpath={query}", check=False
            )
            if done.stdout.strip() == "True":
                return
            time.sleep(0.2)
        raise RuntimeError("the InferenceModel CRD was not established in time")

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        check: bool = True,
        stdin: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [
                self.binary("kubectl"),
                "--kubeconfig",
                str(kubeconfig or self.admin_kubeconfig),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done


@contextmanager
def control_plane(
    directory: Path, node_ip: str | None = None, audited_readers: tuple[str, ...] = ()
) -> Iterator[ControlPlane]:
    plane = ControlPlane(
        directory, kube_binaries(), node_ip=node_ip, audited_readers=audited_readers
    )
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
