#!/usr/bin/env bash
# Build the three image targets of ./Dockerfile (operator, runtime, runtime-gpu) with rootful
# podman, tagged as the operator's defaults expect: ghcr.io/kubevino/<target>:<version>.
# Idempotent: podman's layer cache makes a rebuild of unchanged sources take seconds.
#
#   sudo scripts/system-packages.sh              # once: podman, debootstrap, ...
#   sudo scripts/build-images.sh                 # all targets
#   sudo scripts/build-images.sh runtime         # some targets
#   KUBEVINO_SAVE_DIR=/path sudo scripts/build-images.sh   # also write docker-archives there
#
# Machines without a registry (like CI here) get the Dockerfile's base image made locally:
# debootstrap a Debian bookworm minbase and import it as debian:bookworm-slim. That is only a
# stand-in for the registry; the Dockerfile is the one `docker build` uses anywhere else.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${KUBEVINO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevino}
base=docker.io/library/debian:bookworm-slim
registry=${KUBEVINO_IMAGE_REPOSITORY:-ghcr.io/kubevino}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/runtime/kubevino_common/__init__.py")
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(operator runtime runtime-gpu)

log() { echo "build-images: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "needs root (rootful podman)"; exit 1; }

# podman, runc, slirp4netns (the image tests publish ports through it), debootstrap: installed
# by scripts/system-packages.sh (scripts/test.sh runs it first), only checked here.
for tool in podman runc slirp4netns debootstrap; do
  command -v "$tool" >/dev/null || {
    log "$tool is missing: run scripts/system-packages.sh as root first"
    exit 1
  }
done

# Our own containers.conf instead of editing the machine's: crun refuses this host's hybrid
# cgroups (runc works), and the default nofile ulimit cannot be raised without
# CAP_SYS_RESOURCE.
mkdir -p "$cache"
export CONTAINERS_CONF="$cache/containers.conf"
cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
CONF

if ! podman image exists "$base"; then
  if [ "${KUBEVINO_PULL_BASE:-0}" = 1 ]; then
    podman pull "$base" >&2
  else
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    log "no $base here: debootstrapping bookworm (minbase) in $rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
    # Trimmed the way Debian's -slim images are: no docs, man pages or translations, now or
    # for packages installed later.
    cat > "$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
DPKG
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/*
    rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*
    tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$base" >&2
    rm -rf "$rootfs"
    trap - EXIT
  fi
fi

build_args=(--build-arg "VERSION=$version"
            --build-arg "REVISION=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)")
volumes=()
# Behind a TLS-inspecting proxy pip trusts only the machine's CA bundle: lend it to the build.
host_ca=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$host_ca" ]; then
  volumes+=(-v "$host_ca:/run/host-ca.crt:ro")
  build_args+=(--build-arg PIP_CERT=/run/host-ca.crt)
fi

for target in "${targets[@]}"; do
  tag="$registry/$target:$version"
  log "building $tag"
  # docker format: OCI images drop HEALTHCHECK.
  podman build --runtime runc --format docker --network host "${volumes[@]}" "${build_args[@]}" \
    --target "$target" -t "$tag" -f "$repo/Dockerfile" "$repo" >&2
  size=$(podman image inspect --format '{{.Size}}' "$tag")
  log "$tag: $((size / 1000000)) MB"
  if [ -n "${KUBEVINO_SAVE_DIR:-}" ]; then
    mkdir -p "$KUBEVINO_SAVE_DIR"
    rm -f "$KUBEVINO_SAVE_DIR/$target.tar"
    podman save --format docker-archive -o "$KUBEVINO_SAVE_DIR/$target.tar" "$tag" >&2
  fi
  echo "$tag"
done
