#!/usr/bin/env bash
# The main job on embedded defaults: build the example GPT and train it on the shipped corpus,
# in one process, with loss and tokens/s printed as it goes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
mkdir -p out
node dist/cmd/tessera/main.js model gpt --layers 4 --d-model 128 --heads 4 --context 64 --out out/gpt.onnx
node dist/cmd/tessera/main.js train --model out/gpt.onnx --data test/fixtures/corpus/kjv-genesis-exodus.txt \
  --steps "${STEPS:-300}" --log-every 10 --out out/gpt.trained.onnx
