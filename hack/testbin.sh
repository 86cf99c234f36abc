#!/usr/bin/env bash
# testbin.sh builds the Kubernetes control-plane binaries that the envtest and
# e2e tiers need (kube-apiserver, kube-controller-manager, kube-scheduler and
# etcd) from the Go module proxy, into a cache directory keyed by version, and
# prints that directory (use it as KUBEBUILDER_ASSETS).
#
# Why build: setup-envtest downloads prebuilt binaries from a bucket this
# environment cannot reach. The build modules are pinned by the committed
# go.mod/go.sum files under hack/testbin/{kube,etcd} and built with
# -mod=readonly, so every machine builds the same thing.
#
# Properties:
#   - builds only what is missing from the cache;
#   - safe to call concurrently (flock on the cache directory): parallel test
#     packages share one build;
#   - writes each binary to a temporary name and renames it into place, so a
#     build that is interrupted never leaves a half-written binary behind.
#
# Environment:
#   BOLLARD_TESTBIN_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/bollard/testbin)
#
# Usage: hack/testbin.sh [--print-only]
#   --print-only  print the directory without building (exit 1 if incomplete)
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${BOLLARD_TESTBIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bollard/testbin}"
dir="$root/k8s-${KUBE_VERSION}-etcd-${ETCD_VERSION}-$(go env GOOS)-$(go env GOARCH)"
bins=(kube-apiserver kube-controller-manager kube-scheduler etcd)

complete() {
	local b
	for b in "${bins[@]}"; do
		[[ -x "$dir/$b" ]] || return 1
	done
}

if [[ "${1:-}" == "--print-only" ]]; then
	complete || { echo "testbin: $dir is incomplete; run hack/testbin.sh" >&2; exit 1; }
	echo "$dir"
	exit 0
fi

if complete; then
	echo "$dir"
	exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9

log() { echo "testbin: $*" >&2; }

build_kube() {
	local b=$1 pkg=k8s.io/kubernetes/cmd/$1
	local vpkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
	local ld="-s -w" p
	for p in "${vpkgs[@]}"; do
		ld+=" -X $p.gitVersion=${KUBE_VERSION} -X $p.gitMajor=1 -X $p.gitMinor=37"
		ld+=" -X $p.gitTreeState=clean"
	done
	log "building $b ${KUBE_VERSION} (a few minutes on a cold cache)"
	(cd "$here/testbin/kube" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ld" -o "$dir/.$b.tmp" "$pkg")
	mv "$dir/.$b.tmp" "$dir/$b"
}

build_etcd() {
	log "building etcd ${ETCD_VERSION}"
	(cd "$here/testbin/etcd" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$dir/.etcd.tmp" go.etcd.io/etcd/server/v3)
	mv "$dir/.etcd.tmp" "$dir/etcd"
}

start=$SECONDS
# Re-check under the lock: another caller may have finished the build while we waited.
[[ -x "$dir/etcd" ]] || build_etcd
for b in kube-apiserver kube-controller-manager kube-scheduler; do
	[[ -x "$dir/$b" ]] || build_kube "$b"
done
complete || { log "build finished but $dir is incomplete"; exit 1; }
log "ready in $((SECONDS - start))s: $dir"
echo "$dir"
