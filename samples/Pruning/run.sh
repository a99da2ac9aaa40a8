#!/usr/bin/env bash
# RM pruning end to end on Fashion-MNIST: train a ResNet (ARCH: CIFAR-style resnet20 by default, or e.g. the
# torchvision resnet18), convert it, prune every channel of the
# plain network to half the original's MACs (and, for comparison, the ResNet itself under its residual
# constraint), fine-tune, then benchmark all four models in ONNX Runtime and TorchSharp at batch 1 and 64, and
# the two pruned models against each other.
# Every step is resumable: re-running the script continues where it stopped.
#
# Needs: Debian's dataset-fashion-mnist package (or DATA=<folder> with one sub-folder of images per class).
# Usage: samples/Pruning/run.sh [out-dir]     (ARCH, SIZE, EPOCHS, SPARSITY, FINETUNE, TARGET, DISTILL, FORM, FTFORM, BRANCHES=1, CRITERION, QUICK=1 override)
# QUICK=1 trains on 2,000 images for a few minutes instead of the full hour-long run.
set -euo pipefail
out=${1:-pruning-run}
read -ra rmnet <<< "${RMNET:-rmnet}"   # the command, possibly "dotnet path/RMNet.Cli.dll"
data=${DATA:-fashion-mnist}
arch=${ARCH:-resnet20}; model="$out/$arch.pth"; size=${SIZE:-28}   # SIZE: the images' side
epochs=${EPOCHS:-12}; sparsity=${SPARSITY:-3}; finetune=${FINETUNE:-3}; target=${TARGET:-0.5}
distill=${DISTILL:-0}; form=${FORM:-residual}; criterion=${CRITERION:-taylor}
ftform=(); if [[ -n "${FTFORM:-}" ]]; then ftform=(--finetune-form "$FTFORM"); fi   # FTFORM=residual: fine-tune the masked gated ResNet instead of the cut plain network
if [[ "${BRANCHES:-0}" == 1 ]]; then ftform+=(--finetune-branches); fi   # RepVGG training-time branches while fine-tuning the cut plain network
limits=()
if [[ "${QUICK:-0}" == 1 ]]; then epochs=2; sparsity=1; finetune=1; limits=(--train-limit 2000 --test-limit 1000); fi
mkdir -p "$out"

# 1. Train (a PyTorch-loadable state dict after every epoch; --resume continues a stopped run).
if [[ -f "$model.state.json" ]]; then resume=(--resume); else resume=(--force); fi
"${rmnet[@]}" train --arch "$arch" --data "$data" --epochs "$epochs" -o "$model" "${resume[@]}" "${limits[@]}" \
  --json > "$out/train.json"

# 2. Convert: the exact plain equivalent, verified.
"${rmnet[@]}" convert "$model" -o "$out/$arch-plain.onnx" --verify --input-size "$size" --force --json > "$out/convert.json"

# 3. Prune: RM pruning and the residual-constrained comparison at the same MACs (stages in $out/pruned.onnx.work).
"${rmnet[@]}" prune "$model" --data "$data" --target-flops "$target" --sparsity-epochs "$sparsity" \
  --finetune-epochs "$finetune" --distill "$distill" --train-form "$form" "${ftform[@]}" --criterion "$criterion" --compare-residual -o "$out/pruned.onnx" --force "${limits[@]}" --json > "$out/prune.json"

# 4. Benchmark each model against the original, in both runtimes, at batch 1 and 64.
for runtime in onnxruntime torchsharp; do
  for batch in 1 64; do
    if [[ $runtime == onnxruntime ]]; then pruned="$out/pruned.onnx"; else pruned="$out/pruned.onnx.work/rm-pruned.safetensors"; fi
    "${rmnet[@]}" bench "$model" --size "$size" --batch "$batch" --runtime "$runtime" --runs 50 --json \
      > "$out/bench-plain-$runtime-$batch.json"
    "${rmnet[@]}" bench "$model" --versus "$pruned" --size "$size" --batch "$batch" --runtime "$runtime" --runs 50 --json \
      > "$out/bench-rm-pruned-$runtime-$batch.json"
    "${rmnet[@]}" bench "$model" --versus "$out/pruned.residual.pth" --size "$size" --batch "$batch" --runtime "$runtime" --runs 50 --json \
      > "$out/bench-residual-pruned-$runtime-$batch.json"
    # Head to head: the RM-pruned network's throughput as a multiple of the residual-pruned one's, in one run.
    "${rmnet[@]}" bench "$out/pruned.residual.pth" --versus "$pruned" --size "$size" --batch "$batch" --runtime "$runtime" --runs 50 --json \
      > "$out/bench-rm-vs-residual-$runtime-$batch.json"
  done
done
echo "done: results in $out (prune.json, bench-*.json)"
