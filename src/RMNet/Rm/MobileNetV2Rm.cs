using RMNet.Models;
using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Rm;

/// <summary>
/// RM for torchvision's MobileNetV2: a MobileNetV1-like stack of convs and per-channel clamps, no additions.
/// <list type="bullet">
/// <item>A residual block's input x is the output of the previous block's linear projection and may be negative
///   or above 6. It is carried in extra channels whose clamp is (-inf, inf), never ReLU6, so it passes exactly;
///   the other channels keep ReLU6 as a [0, 6] clamp.</item>
/// <item>The previous projection (1x1, linear) and the next expansion (1x1) have no nonlinearity between them
///   and merge into one conv (W = We Wp, b = We bp + be; the same for the last projection and the final 1x1 conv)
///   only where the merged conv costs no more than the pair (<see cref="LinearConvMerge.Pays"/>, the ONNX path's
///   decision too). With torchvision's 6x expansions it never does (a 24 -> 144 expansion after a 144 -> 24
///   projection: 144 x 144 merged against 2 x 144 x 24), so both stay, the expansion with the carried rows.</item>
/// <item>The depthwise conv passes the carried channels through with one-channel Dirac groups; the projection
///   merges them back with +I.</item>
/// </list>
/// float64 weight arithmetic, each plain kernel cast once.
/// </summary>
internal static class MobileNetV2Rm
{
    sealed record Pending(Tensor Weight, Tensor Bias, int Stride, Padding2d Padding, int Groups);

    /// <summary>The plain network equivalent to the MobileNetV2.</summary>
    public static PlainModel Transform(StateDict sd, MobileNetV2Spec spec, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default)
    {
        var layers = new List<PlainLayer>();
        var stem = ConvBn(sd, "features.0.0", "features.0.1", 2, 1);
        layers.Add(Layer(stem.Weights.Weight, stem.Weights.BiasOrZeros(), 2, Padding2d.All(1), 1));
        layers.Add(Clamp(0, stem.OutChannels));
        Pending? pending = null;
        for (int i = 0; i < spec.Blocks.Count; i++)
        {
            var b = spec.Blocks[i];
            string p = b.Prefix;
            long carried = b.Residual ? b.InChannels : 0;
            if (b.Expand)
            {
                var e = ConvBn(sd, $"{p}.0.0", $"{p}.0.1", 1, 0);
                if (pending is null)
                    throw new RmException($"block features.{b.Index} expands right after a nonlinearity; only torchvision's layout (block 1 without expansion) is supported");
                // The expansion emits [x carried ; expand(x)]: merged into the projection that made x, or on its own.
                if (!Pays(pending, carried + b.Hidden))
                {
                    layers.Add(Layer(pending.Weight, pending.Bias, pending.Stride, pending.Padding, pending.Groups));
                    pending = Identity(pending.Weight.shape[0]);
                }
                var merged = MergeOneByOne(e, pending);
                var w = b.Residual ? cat(new[] { pending.Weight, merged.W }, 0) : merged.W;
                var bias = b.Residual ? cat(new[] { pending.Bias, merged.B }, 0) : merged.B;
                layers.Add(Layer(w, bias, pending.Stride, pending.Padding, pending.Groups));
                layers.Add(Clamp(carried, b.Hidden));
                pending = null;
            }
            else if (pending is not null)
                throw new RmException($"block features.{b.Index} has no expansion after a linear projection; not torchvision's layout");
            else if (b.Residual)
            {
                // No expansion: x is the output of the conv+clamp just emitted (x = relu6(...)). Emitting those rows
                // twice gives the carried copy and the depthwise input (the clamp is the same for both), where that
                // costs no more than a 1x1 conv [I ; I] after the clamp (LinearConvMerge.Pays, as the ONNX path's
                // entry conv), which is emitted otherwise (torchvision at width 0.25: an 8-channel stem of 3 x 3x3).
                var conv = (ConvLayer)layers[^2];
                var clamp = (ClampLayer)layers[^1];
                if (LinearConvMerge.Pays(conv.Weight.shape[0], conv.Weight.shape[1] * conv.Groups, conv.Weight.shape[2], conv.Weight.shape[3], conv.Groups, 2 * conv.Weight.shape[0]))
                {
                    layers[^2] = conv with { Weight = cat(new[] { conv.Weight, conv.Weight }, 0), Bias = cat(new[] { conv.Bias, conv.Bias }, 0) };
                    layers[^1] = new ClampLayer(cat(new[] { clamp.Lower, clamp.Lower }, 0), cat(new[] { clamp.Upper, clamp.Upper }, 0));
                }
                else
                {
                    long c = conv.Weight.shape[0];
                    var eye2 = cat(new[] { eye(c, dtype: ScalarType.Float64), eye(c, dtype: ScalarType.Float64) }, 0).reshape(2 * c, c, 1, 1);
                    layers.Add(Layer(eye2, zeros(2 * c, dtype: ScalarType.Float64), 1, Padding2d.All(0), 1));
                }
            }

            // Depthwise conv, with one-channel Dirac groups for the carried channels in front.
            var dw = ConvBn(sd, b.Expand ? $"{p}.1.0" : $"{p}.0.0", b.Expand ? $"{p}.1.1" : $"{p}.0.1", b.Stride, 1, (int)b.Hidden);
            var dwWeight = zeros(new[] { carried + b.Hidden, 1, 3, 3 }, dtype: ScalarType.Float64);
            if (carried > 0) dwWeight[TensorIndex.Slice(0, carried), 0, 1, 1] = ones(carried, dtype: ScalarType.Float64);
            dwWeight[TensorIndex.Slice(carried)] = dw.Weights.Weight;
            var dwBias = cat(new[] { zeros(carried, dtype: ScalarType.Float64), dw.Weights.BiasOrZeros() }, 0);
            layers.Add(Layer(dwWeight, dwBias, b.Stride, Padding2d.All(1), (int)(carried + b.Hidden)));
            layers.Add(Clamp(carried, b.Hidden));

            // Projection: linear; the carried input merges back with +I. It stays pending until the next 1x1 conv.
            var proj = ConvBn(sd, b.Expand ? $"{p}.2" : $"{p}.1", b.Expand ? $"{p}.3" : $"{p}.2", 1, 0);
            var projWeight = zeros(new[] { proj.OutChannels, carried + b.Hidden, 1, 1 }, dtype: ScalarType.Float64);
            if (carried > 0)
            {
                var r = arange(carried, dtype: ScalarType.Int64);
                projWeight.index_put_(ones(carried, dtype: ScalarType.Float64), r, r, tensor(0L), tensor(0L));
            }
            projWeight[TensorIndex.Colon, TensorIndex.Slice(carried)] = proj.Weights.Weight;
            pending = new Pending(projWeight, proj.Weights.BiasOrZeros(), 1, Padding2d.All(0), 1);
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new ProgressStep("converting", i + 1, spec.Blocks.Count));
        }
        var last = ConvBn(sd, $"features.{spec.LastIndex}.0", $"features.{spec.LastIndex}.1", 1, 0);
        if (!Pays(pending!, last.OutChannels))
        {
            layers.Add(Layer(pending!.Weight, pending.Bias, pending.Stride, pending.Padding, pending.Groups));
            pending = Identity(pending.Weight.shape[0]);
        }
        var head = MergeOneByOne(last, pending!);
        layers.Add(Layer(head.W, head.B, pending!.Stride, pending.Padding, pending.Groups));
        layers.Add(Clamp(0, spec.LastWidth));
        layers.Add(new GlobalAvgPoolLayer());
        layers.Add(new FlattenLayer());
        layers.Add(new LinearLayer(sd.Require("classifier.1.weight").to_type(ScalarType.Float32).clone(), sd.Require("classifier.1.bias").to_type(ScalarType.Float32).clone()));
        return new PlainModel(layers);
    }

    /// <summary>A 1x1 conv applied after <paramref name="first"/> with nothing between: W = W2 W1, b = W2 b1 + b2.</summary>
    static (Tensor W, Tensor B) MergeOneByOne(FusedConv second, Pending first)
    {
        if (second.KernelH != 1 || second.KernelW != 1 || second.Stride != 1)
            throw new RmException("only a 1x1, stride-1 conv merges into the conv before it");
        return LinearConvMerge.Merge(first.Weight, first.Bias, second.Weights.Weight, second.Weights.BiasOrZeros());
    }

    /// <summary>Whether <paramref name="outputs"/> rows of a 1x1 conv after <paramref name="first"/> are cheaper merged into it.</summary>
    static bool Pays(Pending first, long outputs) =>
        LinearConvMerge.Pays(first.Weight.shape[0], first.Weight.shape[1] * first.Groups, first.Weight.shape[2], first.Weight.shape[3], first.Groups, outputs);

    /// <summary>The identity as a pending 1x1 conv over <paramref name="c"/> channels: what a 1x1 conv merges into when it stands alone.</summary>
    static Pending Identity(long c) =>
        new(eye(c, dtype: ScalarType.Float64).reshape(c, c, 1, 1), zeros(c, dtype: ScalarType.Float64), 1, Padding2d.All(0), 1);

    static FusedConv ConvBn(StateDict sd, string conv, string bn, int stride, int padding, int groups = 1) =>
        new(BatchNormFusion.Fuse(new ConvWeights(sd.Require($"{conv}.weight"), null),
            new BatchNormWeights(sd.Require($"{bn}.weight"), sd.Require($"{bn}.bias"), sd.Require($"{bn}.running_mean"),
                sd.Require($"{bn}.running_var"), TorchvisionWeights.BatchNormEps)), stride, Padding2d.All(padding), groups);

    /// <summary>(-inf, inf) on the first <paramref name="carried"/> channels, ReLU6's [0, 6] on the rest.</summary>
    static ClampLayer Clamp(long carried, long others) => new(
        cat(new[] { full(carried, float.NegativeInfinity), zeros(others) }, 0),
        cat(new[] { full(carried, float.PositiveInfinity), full(others, 6f) }, 0));

    static ConvLayer Layer(Tensor weight, Tensor bias, int stride, Padding2d padding, int groups) =>
        new(weight.to_type(ScalarType.Float32), bias.to_type(ScalarType.Float32), stride, stride, padding, groups);
}
