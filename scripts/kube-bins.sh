#!/usr/bin/env bash
# Build pinned upstream Kubernetes binaries, etcd and helm from the Go module proxy, cached per version
# outside the checkout. Prints the directory holding them. Idempotent: a cached build is reused.
#
#   scripts/kube-bins.sh            # versions from scripts/versions.env
#   KUBEVINO_KUBE_VERSION=v1.37.2 scripts/kube-bins.sh
#   scripts/kube-bins.sh --cached   # builds nothing: exit 0 when all is cached, 1 when a run would build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
kube_version=${KUBEVINO_KUBE_VERSION:-$KUBE_VERSION}
etcd_version=${KUBEVINO_ETCD_VERSION:-$ETCD_VERSION}
helm_version=${KUBEVINO_HELM_VERSION:-$HELM_VERSION}
minio_version=${KUBEVINO_MINIO_VERSION:-$MINIO_VERSION}
containerd_version=${KUBEVINO_CONTAINERD_VERSION:-$CONTAINERD_VERSION}
cache=${KUBEVINO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevino}
components=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
kube_dir="$cache/kubernetes-$kube_version"
etcd_dir="$cache/etcd-$etcd_version"
helm_dir="$cache/helm-$helm_version"
minio_dir="$cache/minio-$minio_version"
containerd_dir="$cache/containerd-$containerd_version"

log() { echo "kube-bins: $*" >&2; }

build_kubernetes() {
  local work; work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  local minor=${kube_version#v1.}; minor=${minor%%.*}
  log "building Kubernetes $kube_version (${components[*]}) in $work"
  (
    cd "$work"
    go mod init kubevino.local/kubebins >/dev/null 2>&1
    go mod download -json "k8s.io/kubernetes@$kube_version" >/dev/null
    local gomod; gomod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$kube_version.mod
    {
      echo "require k8s.io/kubernetes $kube_version"
      # Every staging module k8s.io/kubernetes replaces with ./staging/... comes from the proxy
      # at the matching v0 version.
      grep -E '^\s+k8s.io/[a-z0-9-]+ => ./staging' "$gomod" | awk -v v="v0.${kube_version#v1.}" \
        '{print "replace " $1 " => " $1 " " v}'
    } >> go.mod
    {
      echo '//go:build tools'
      echo 'package tools'
      echo 'import ('
      for c in "${components[@]}"; do echo "  _ \"k8s.io/kubernetes/cmd/$c\""; done
      echo ')'
    } > tools.go
    go mod tidy >/dev/null 2>&1 || go mod tidy
    local pkg=k8s.io/component-base/version
    local flags="-s -w -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean"
    mkdir -p "$kube_dir.partial"
    for c in "${components[@]}"; do
      CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o "$kube_dir.partial/$c" "k8s.io/kubernetes/cmd/$c"
      log "built $c"
    done
  )
  rm -rf "$kube_dir"; mv "$kube_dir.partial" "$kube_dir"
}

build_etcd() {
  local work; work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  log "building etcd $etcd_version in $work"
  (
    cd "$work"
    go mod init kubevino.local/etcd >/dev/null 2>&1
    cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go get "go.etcd.io/etcd/server/v3@$etcd_version" >/dev/null 2>&1
    go mod tidy >/dev/null 2>&1
    mkdir -p "$etcd_dir.partial"
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$etcd_dir.partial/etcd" .
  )
  rm -rf "$etcd_dir"; mv "$etcd_dir.partial" "$etcd_dir"
}

# go_install DIR PACKAGE@VERSION: a tool whose main package `go install` builds as it is.
go_install() {
  log "building $2"
  mkdir -p "$1.partial"
  GOBIN="$1.partial" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$2"
  rm -rf "$1"; mv "$1.partial" "$1"
}

complete() { for c in "$@"; do [[ -x "$c" ]] || return 1; done; }

# containerd 2 (the node tier's runtime: CDI for DRA, image volumes) with its shim and ctr.
# Not linked into bin-*: the node puts this directory first in containerd's PATH, so the
# shim it starts is this version's, never a distribution's older one.
build_containerd() {
  log "building containerd $containerd_version"
  mkdir -p "$containerd_dir.partial"
  local module=github.com/containerd/containerd/v2/cmd
  GOBIN="$containerd_dir.partial" go install -trimpath -tags no_btrfs -ldflags "-s -w \
    -X github.com/containerd/containerd/v2/version.Version=$containerd_version" \
    "$module/containerd@$containerd_version" "$module/containerd-shim-runc-v2@$containerd_version" \
    "$module/ctr@$containerd_version"
  rm -rf "$containerd_dir"; mv "$containerd_dir.partial" "$containerd_dir"
}

kube_paths=(); for c in "${components[@]}"; do kube_paths+=("$kube_dir/$c"); done
if [ "${1:-}" = --cached ]; then
  complete "${kube_paths[@]}" "$etcd_dir/etcd" "$helm_dir/helm" "$minio_dir/minio" \
    "$containerd_dir/containerd" "$containerd_dir/containerd-shim-runc-v2" "$containerd_dir/ctr"
  exit
fi

# Two test runs at once (or a test and a developer) would build into the same .partial
# directories: the second waits for the first and then finds the binaries built.
mkdir -p "$cache"
exec 9>"$cache/.kube-bins.lock"
flock 9

complete "${kube_paths[@]}" || build_kubernetes
complete "$etcd_dir/etcd" || build_etcd
complete "$helm_dir/helm" || go_install "$helm_dir" "helm.sh/helm/v3/cmd/helm@$helm_version"
complete "$minio_dir/minio" || go_install "$minio_dir" "github.com/minio/minio@$minio_version"
complete "$containerd_dir/containerd" "$containerd_dir/containerd-shim-runc-v2" "$containerd_dir/ctr" \
  || build_containerd
mkdir -p "$cache/bin-$kube_version"
for path in "${kube_paths[@]}" "$etcd_dir/etcd" "$helm_dir/helm" "$minio_dir/minio"; do ln -sf "$path" "$cache/bin-$kube_version/"; done
echo "$cache/bin-$kube_version"
