using RMNet.Models;
using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Rm;

/// <summary>How a block input that may be negative is carried through the activations (docs/design.md section 7).</summary>
public enum NegativeInputMode
{
    /// <summary>Per-channel activation: PReLU with slope 1 on the carried channels, 0 (ReLU) on the others.</summary>
    PRelu,
    /// <summary>Sign split: carry relu(x) and relu(-x), merge with +I and -I; plain ReLU only, twice the carried channels.</summary>
    Split,
}

/// <summary>
/// RM for pre-activation ResNets. Block: a = relu(bn1(x)); y = branch(a) + (shortcut(a) or x), no activation
/// after the sum. x is the output of a linear conv and may be negative.
/// <list type="bullet">
/// <item>bn1 follows the previous linear conv directly, so it folds into that conv's output rows (projection
///   blocks). Where the block also needs x itself (identity shortcut) a 1x1 entry conv emits both x (carried) and
///   bn1(x), unless folding those rows into the previous conv costs no more (<see cref="LinearConvMerge.Pays"/>:
///   after a wide enough stem).</item>
/// <item>Identity shortcut: x is carried through the activations as PReLU slope-1 channels, or as relu(x) and
///   relu(-x) under the sign split, and merged into the last conv with +I (and -I).</item>
/// <item>Projection shortcut: it reads a = relu(bn1(x)) >= 0, so a is reserved exactly as in a ResNet block.</item>
/// <item>bn2 (and bn3) follow conv1 (conv2) directly and fold into them; the final bn folds into the last block's conv.</item>
/// </list>
/// All weight arithmetic is float64; each plain kernel is cast to float32 once.
/// </summary>
internal static class PreActRm
{
    sealed record Pending(Tensor Weight, Tensor Bias, int Stride, Padding2d Padding);

    /// <summary>The plain network equivalent to the pre-activation ResNet.</summary>
    public static PlainModel Transform(StateDict sd, PreActResNetSpec spec, NegativeInputMode negative, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default)
    {
        var layers = new List<PlainLayer>();
        var stages = new List<string>();
        void Emit(PlainLayer layer, string stage) { layers.Add(layer); stages.Add(stage); }

        var stem = F64(sd.Require("conv1.weight"));
        var pending = new Pending(stem, zeros(stem.shape[0], dtype: ScalarType.Float64), 1, Padding2d.All(spec.StemKernel / 2));
        string pendingStage = "stem";
        for (int i = 0; i < spec.Blocks.Count; i++)
        {
            // Each block's float64 working tensors go with its scope (left to the garbage collector they pile up).
            using var scope = NewDisposeScope();
            int firstLayer = layers.Count;
            var used = pending;
            var b = spec.Blocks[i];
            string stage = $"layer{b.Stage + 1}";
            var bn1 = CarryKernels.Bn(sd, $"{b.Prefix}.bn1");
            long c = b.InChannels;

            // Entry: the previous linear conv emits [carried x ; bn1(x)] (identity) or [bn1(x)] (projection) where
            // that costs no more than the conv as it is followed by a 1x1 entry conv (LinearConvMerge.Pays; a BN alone
            // always folds); otherwise the conv is emitted as it is and the entry is that 1x1 conv.
            long carried = b.HasProjection ? 0 : negative == NegativeInputMode.Split ? 2 * c : c;
            if (!LinearConvMerge.Pays(pending.Weight.shape[0], pending.Weight.shape[1], pending.Weight.shape[2], pending.Weight.shape[3], 1, carried + c))
            {
                Emit(CarryKernels.Layer(pending.Weight, pending.Bias, pending.Stride, pending.Padding), pendingStage);
                pending = new Pending(eye(c, dtype: ScalarType.Float64).reshape(c, c, 1, 1), zeros(c, dtype: ScalarType.Float64), 1, Padding2d.All(0));
                pendingStage = stage;
            }
            var rows = new List<(Tensor W, Tensor B)>();
            if (!b.HasProjection)
            {
                rows.Add((pending.Weight, pending.Bias));
                if (negative == NegativeInputMode.Split) rows.Add((-pending.Weight, -pending.Bias));
            }
            var bnRows = BatchNormFusion.Fuse(new ConvWeights(pending.Weight, pending.Bias), bn1);
            rows.Add((bnRows.Weight, bnRows.BiasOrZeros()));
            Emit(CarryKernels.Layer(cat(rows.Select(r => r.W).ToArray(), 0), cat(rows.Select(r => r.B).ToArray(), 0), pending.Stride, pending.Padding), pendingStage);
            Emit(Activation(carried, c, negative), pendingStage);

            // Reserved rows at the front of every inner conv: the carried x, or a itself for a projection.
            long reserved = b.HasProjection ? c : carried;
            var convs = Branch(sd, spec, b);
            long inputOffset = carried;  // the branch reads a, which sits after the carried rows
            for (int k = 0; k < convs.Count; k++)
            {
                var conv = convs[k];
                long kh = conv.Weights.Weight.shape[2], kw = conv.Weights.Weight.shape[3];
                long tapH = conv.Padding.Top, tapW = conv.Padding.Left;
                var w = conv.Weights.Weight;
                long inTotal = k == 0 ? carried + c : reserved + w.shape[1];
                long featureOffset = k == 0 ? inputOffset : reserved;
                bool last = k == convs.Count - 1;
                var weight = zeros(new[] { (last ? 0 : reserved) + w.shape[0], inTotal, kh, kw }, dtype: ScalarType.Float64);
                long outOffset = last ? 0 : reserved;
                weight[TensorIndex.Slice(outOffset), TensorIndex.Slice(featureOffset, featureOffset + w.shape[1])] = w;
                if (!last)
                {
                    // Pass the reserved rows on: from the carried rows, or (first conv, projection) from a.
                    long source = k == 0 && b.HasProjection ? inputOffset : 0;
                    CarryKernels.PutDirac(weight, 0, source, reserved, tapH, tapW, 1.0);
                }
                else if (b.HasProjection)
                {
                    var shortcut = F64(sd.Require($"{b.Prefix}.shortcut.0.weight"));
                    weight[TensorIndex.Colon, TensorIndex.Slice(0, c)] += Kernels.PadOneByOne(shortcut, kh, kw, tapH, tapW);
                }
                else
                {
                    CarryKernels.PutDirac(weight, 0, 0, c, tapH, tapW, 1.0);
                    if (negative == NegativeInputMode.Split) CarryKernels.PutDirac(weight, 0, c, c, tapH, tapW, -1.0);
                }
                var bias = last ? conv.Weights.BiasOrZeros() : cat(new[] { zeros(reserved, dtype: ScalarType.Float64), conv.Weights.BiasOrZeros() }, 0);
                if (last)
                {
                    pending = new Pending(weight, bias, conv.Stride, conv.Padding);
                    pendingStage = stage;
                }
                else
                {
                    Emit(CarryKernels.Layer(weight, bias, conv.Stride, conv.Padding), stage);
                    Emit(Activation(b.HasProjection ? 0 : reserved, w.shape[0], negative), stage);
                }
            }
            PlainLayer.MoveToOuterDisposeScope(layers.GetRange(firstLayer, layers.Count - firstLayer));
            pending.Weight.MoveToOuterDisposeScope();
            pending.Bias.MoveToOuterDisposeScope();
            used.Weight.Dispose();   // the previous block's last conv, now in this block's entry layer
            used.Bias.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new ProgressStep("converting", i + 1, spec.Blocks.Count));
        }

        // Head: relu(bn(last block output)), pooled, linear.
        var head = BatchNormFusion.Fuse(new ConvWeights(pending.Weight, pending.Bias), CarryKernels.Bn(sd, "bn"));
        Emit(CarryKernels.Layer(head.Weight, head.BiasOrZeros(), pending.Stride, pending.Padding), pendingStage);
        Emit(new ReluLayer(), "head");
        Emit(new GlobalAvgPoolLayer(), "head");
        Emit(new FlattenLayer(), "head");
        Emit(new LinearLayer(sd.Require("linear.weight").to_type(ScalarType.Float32).clone(), sd.Require("linear.bias").to_type(ScalarType.Float32).clone()), "head");
        return new PlainModel(layers) { LayerStages = stages };
    }

    /// <summary>The branch convs in order, each with the BN that follows it folded in (bn2 into conv1, bn3 into conv2).</summary>
    static List<FusedConv> Branch(StateDict sd, PreActResNetSpec spec, PreActBlockSpec b)
    {
        var list = new List<FusedConv>();
        for (int k = 1; k <= spec.ConvsPerBlock; k++)
        {
            var w = sd.Require($"{b.Prefix}.conv{k}.weight");
            int stride = (spec.Bottleneck ? k == 2 : k == 1) ? b.Stride : 1;
            var pad = Padding2d.All((int)w.shape[2] / 2);
            var weights = new ConvWeights(F64(w), null);
            if (k < spec.ConvsPerBlock) weights = BatchNormFusion.Fuse(weights, CarryKernels.Bn(sd, $"{b.Prefix}.bn{k + 1}"));
            list.Add(new FusedConv(weights.ToFloat64(), stride, pad));
        }
        return list;
    }

    /// <summary>PReLU slope 1 on the first <paramref name="carried"/> channels and 0 after; plain ReLU where nothing negative is carried.</summary>
    static PlainLayer Activation(long carried, long others, NegativeInputMode negative) =>
        carried == 0 || negative == NegativeInputMode.Split
            ? new ReluLayer()
            : new PReluLayer(cat(new[] { ones(carried), zeros(others) }, 0));

    static Tensor F64(Tensor t) => t.to_type(ScalarType.Float64);
}
