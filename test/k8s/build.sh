#!/usr/bin/env bash
# Builds the binaries Tessera's Kubernetes integration tests run, once, into
#   ${TESSERA_CACHE:-$HOME/.cache/tessera}/k8s/<version>/{tessera-k8s,kwok}
# tessera-k8s: kube-apiserver (k8s.io/kubernetes) over an embedded etcd, kube-scheduler, kube-controller-manager.
# kwok:        sigs.k8s.io/kwok/cmd/kwok, fake nodes and pods, from the same module graph.
# A no-op when the binaries for the current sources are cached. Prints the cache dir last.
# The first build compiles most of Kubernetes: ~15-25 min on 2 cores; later ones: seconds.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="$HERE/tools"
K8S_VERSION="v1.36.1"
KWOK_VERSION="v0.8.0"
# The stamp covers the wrapper's sources, so editing them rebuilds.
STAMP="$(cat "${BASH_SOURCE[0]}" "$TOOLS"/go.mod "$TOOLS"/go.sum "$TOOLS"/*.go 2>/dev/null | sha256sum | cut -c1-16)"
OUT="${TESSERA_CACHE:-$HOME/.cache/tessera}/k8s/${K8S_VERSION}-kwok${KWOK_VERSION}-${STAMP}"

if [ -x "$OUT/tessera-k8s" ] && [ -x "$OUT/kwok" ] && [ -f "$OUT/kwok-stages.yaml" ]; then
  echo "k8s test binaries cached: $OUT" >&2
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "build.sh: Go (>= 1.26) is required to build kube-apiserver and kwok" >&2; exit 1; }
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9
if [ -x "$OUT/tessera-k8s" ] && [ -x "$OUT/kwok" ] && [ -f "$OUT/kwok-stages.yaml" ]; then # built by a concurrent caller
  echo "$OUT"
  exit 0
fi

echo "Building kube-apiserver/kube-scheduler/kube-controller-manager ${K8S_VERSION} + kwok ${KWOK_VERSION} into $OUT (first time: many minutes)..." >&2
start=$(date +%s)
cd "$TOOLS"
export GOFLAGS="${GOFLAGS:--mod=mod}" GOMAXPROCS="${GOMAXPROCS:-2}"
P="${TESSERA_GO_BUILD_P:-2}"
V=k8s.io/component-base/version
LDFLAGS="-s -w -X $V.gitVersion=${K8S_VERSION} -X $V.gitMajor=$(echo "$K8S_VERSION" | cut -d. -f1 | tr -d v) -X $V.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $V.gitTreeState=clean"
go build -p "$P" -trimpath -ldflags "$LDFLAGS" -o "$OUT/tessera-k8s.tmp" . >&2
go build -p "$P" -trimpath -ldflags '-s -w' -o "$OUT/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok >&2
# kwok alone ships no stages (kwokctl injects them): take the upstream defaults from the module:
# nodes become Ready and heartbeat; pods on managed nodes become Running, complete, and are deleted.
KWOK_DIR="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
         pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
  echo "---"; cat "$KWOK_DIR/kustomize/stage/$f"
done > "$OUT/kwok-stages.yaml"
mv "$OUT/tessera-k8s.tmp" "$OUT/tessera-k8s"
mv "$OUT/kwok.tmp" "$OUT/kwok"
# Older builds (other sources) are dead weight: ~200 MB each.
for old in "$(dirname "$OUT")"/*; do
  if [ "$old" != "$OUT" ] && [ -d "$old" ]; then rm -rf "$old"; fi
done
echo "Built in $(( $(date +%s) - start ))s: $(du -h "$OUT/tessera-k8s" | cut -f1) tessera-k8s, $(du -h "$OUT/kwok" | cut -f1) kwok" >&2
echo "$OUT"
