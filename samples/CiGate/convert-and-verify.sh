#!/usr/bin/env bash
# A deployment gate: convert a trained ResNet checkpoint to a plain ONNX model and refuse to ship it unless
# ONNX Runtime reproduces the original within the tolerance. Exit codes are rmnet's:
#   0 equivalent (the model is written), 1 not equivalent (nothing is written), 2 bad input or usage.
# Usage: convert-and-verify.sh model.pth out/model-plain.onnx [tolerance]
set -euo pipefail
checkpoint=$1
output=$2
tolerance=${3:-1e-4}
read -ra rmnet <<< "${RMNET:-rmnet}"   # the command, possibly "dotnet path/RMNet.Cli.dll"

mkdir -p "$(dirname "$output")"
# --verify checks the written file itself before it is renamed into place.
"${rmnet[@]}" convert "$checkpoint" -o "$output" --force --verify --tolerance "$tolerance" --json > "$output.convert.json"
# An independent second look, on other seeded images and the model's own input size.
"${rmnet[@]}" verify "$checkpoint" "$output" --seed 1 --samples 8 --tolerance "$tolerance" --json > "$output.verify.json"
"${rmnet[@]}" inspect "$output" --json > "$output.inspect.json"
grep -q '"form": "plain"' "$output.inspect.json"
echo "gate passed: $output"
