#!/usr/bin/env bash
# Installs what the integration tests need beyond npm: nats-server (Debian package). Idempotent.
set -euo pipefail
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
  echo "nats-server present: $( (command -v nats-server || echo /usr/sbin/nats-server) | head -1)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nats-server
bash "$(dirname "$0")/k8s/build.sh" >/dev/null || echo "test/k8s/build.sh failed: the Kubernetes integration tests (test/k8s) cannot run" >&2  # kube-apiserver/scheduler/controller-manager + kwok, cached after the first build
