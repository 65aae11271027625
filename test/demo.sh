#!/usr/bin/env bash
# The main job on embedded defaults: build the example GPT and train it pipeline-parallel across
# 4 local stage-worker processes (1F1B, 8 micro-batches) over a local nats-server, on the shipped
# corpus, printing loss and tokens/s as it goes. STAGES=1 trains in one process instead.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
bash test/provision.sh --nats-only
npx tsc -p tsconfig.json
mkdir -p out && rm -rf out/gpt.trained.onnx out/gpt.trained.onnx.ckpt
node dist/cmd/tessera/main.js model gpt --layers 4 --d-model 128 --heads 4 --context 64 --out out/gpt.onnx
stages="${STAGES:-4}"
pipeline=()
if [ "$stages" -gt 1 ]; then pipeline=(--stages "$stages" --micro-batches 8 --schedule 1f1b); fi
node dist/cmd/tessera/main.js train --model out/gpt.onnx --data test/fixtures/corpus/kjv-genesis-exodus.txt \
  --steps "${STEPS:-300}" --log-every 10 "${pipeline[@]}" --out out/gpt.trained.onnx
