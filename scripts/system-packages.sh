#!/usr/bin/env bash
# Install every Debian package any part of the project needs, in one place, before anything
# else runs: scripts/test.sh and scripts/demo.sh call it first, so no test ever installs a
# package (a test inside its network namespace has no route to the package mirror).
#
#   sudo scripts/system-packages.sh          # install what is missing (idempotent, quick when done)
#   scripts/system-packages.sh --check       # only say what is missing; exit 1 if anything is
#
# As a non-root user it installs nothing: it names what is missing and carries on, and the tiers
# that need root (images, e2e) skip with a message saying so.
set -euo pipefail

log() { echo "system-packages: $*" >&2; }

# command (or file) that shows the package is there → the Debian package that provides it.
# Node tier: runc, the CNI bridge/host-local plugins, iptables (kube-proxy) — containerd 2 is
# built from the Go module proxy by kube-bins.sh (Debian's 1.6 has no CDI) —
# ip (network namespaces), nsenter/mount (util-linux), openssl (cluster certificates).
# Images tier: podman with runc, slirp4netns for published ports, debootstrap for the base image
# where no registry serves it, uidmap and fuse-overlayfs as podman's storage needs them.
# Runtime tier: curl, a real client of the streaming OpenAI endpoints (curl -N).
requirements=(
  "runc runc"
  "/usr/lib/cni/bridge containernetworking-plugins"
  "iptables iptables"
  "ip iproute2"
  "nsenter util-linux"
  "openssl openssl"
  "podman podman"
  "slirp4netns slirp4netns"
  "debootstrap debootstrap"
  "newuidmap uidmap"
  "fuse-overlayfs fuse-overlayfs"
  "/etc/ssl/certs/ca-certificates.crt ca-certificates"
  "curl curl"
)

present() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ;;
  esac
}

missing=()
for requirement in "${requirements[@]}"; do
  read -r probe package <<<"$requirement"
  present "$probe" || missing+=("$package")
done
# The project's Python: python3.11 (or newer) with venv; Debian bookworm's python3 is 3.11.
python=${PYTHON:-python3.11}
if ! command -v "$python" >/dev/null 2>&1 && ! python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  missing+=(python3 python3-venv)
fi
# Go builds the pinned upstream tools (Kubernetes, etcd, helm, MinIO, the pause fixture). It is
# not a Debian package here: Kubernetes needs a newer Go than bookworm ships.
command -v go >/dev/null 2>&1 || log "warning: no Go toolchain on PATH: the cluster, node and images tiers need one (Go >= 1.24)"

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = --check ]; then
  log "missing: ${missing[*]}"
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  log "missing ${missing[*]}; run 'sudo $0' to install them (the root-only tiers skip without them)"
  exit 0
fi

log "installing ${missing[*]}"
apt=(apt-get -q -o DPkg::Lock::Timeout=300)
export DEBIAN_FRONTEND=noninteractive
install=("${apt[@]}" install -y --no-install-recommends "${missing[@]}")
output=$(mktemp)
trap 'rm -f "$output"' EXIT
# A stale package index (a package or version the mirror no longer has) is refreshed once; an
# apt run of someone else's holds the lock and is waited for (DPkg::Lock::Timeout).
if ! "${install[@]}" >"$output" 2>&1; then
  log "install failed; refreshing the package index and trying again"
  "${apt[@]}" update >"$output" 2>&1 || { cat "$output" >&2; log "apt-get update failed"; exit 1; }
  if ! "${install[@]}" >"$output" 2>&1; then
    tail -n 40 "$output" >&2
    log "apt-get install ${missing[*]} failed (above: what apt said)"
    exit 1
  fi
fi
still=()
for requirement in "${requirements[@]}"; do
  read -r probe package <<<"$requirement"
  present "$probe" || still+=("$package")
done
if [ ${#still[@]} -gt 0 ]; then
  log "installed, yet still missing: ${still[*]}"
  exit 1
fi
log "done"
