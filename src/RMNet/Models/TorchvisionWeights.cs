using RMNet.Plain;
using RMNet.Weights;

namespace RMNet.Models;

/// <summary>The one place that turns torchvision state-dict names into fused weights.</summary>
internal static class TorchvisionWeights
{
    /// <summary>BatchNorm epsilon of torchvision's ResNets.</summary>
    public const double BatchNormEps = 1e-5;

    /// <summary>Conv <paramref name="conv"/>.weight followed by BN <paramref name="bn"/>, folded (float64).</summary>
    public static FusedConv ConvBn(StateDict sd, string conv, string bn, int stride, int padding, int groups = 1)
    {
        var weights = new ConvWeights(sd.Require($"{conv}.weight"), sd.TryGetValue($"{conv}.bias", out var b) ? b : null);
        var norm = new BatchNormWeights(sd.Require($"{bn}.weight"), sd.Require($"{bn}.bias"),
            sd.Require($"{bn}.running_mean"), sd.Require($"{bn}.running_var"), BatchNormEps);
        return new FusedConv(BatchNormFusion.Fuse(weights, norm), stride, Padding2d.All(padding), groups);
    }

    /// <summary>The stem conv with bn1 folded, at the layout's stride and padding.</summary>
    public static FusedConv Stem(StateDict sd, ResNetSpec spec) => ConvBn(sd, "conv1", "bn1", spec.StemStride, spec.StemPadding);

    /// <summary>The residual branch of a block, in order, BN folded.</summary>
    public static IReadOnlyList<FusedConv> Branch(StateDict sd, ResNetSpec spec, BlockSpec b) => spec.Block == BlockKind.Basic
        ? new[]
        {
            ConvBn(sd, $"{b.Prefix}.conv1", $"{b.Prefix}.bn1", b.Stride, 1),
            ConvBn(sd, $"{b.Prefix}.conv2", $"{b.Prefix}.bn2", 1, 1),
        }
        : new[]
        {
            ConvBn(sd, $"{b.Prefix}.conv1", $"{b.Prefix}.bn1", 1, 0),
            ConvBn(sd, $"{b.Prefix}.conv2", $"{b.Prefix}.bn2", b.Stride, 1, b.Groups),
            ConvBn(sd, $"{b.Prefix}.conv3", $"{b.Prefix}.bn3", 1, 0),
        };

    /// <summary>The fused projection shortcut, or null for the identity.</summary>
    public static FusedConv? Projection(StateDict sd, BlockSpec b) =>
        b.HasProjection ? ConvBn(sd, $"{b.Prefix}.downsample.0", $"{b.Prefix}.downsample.1", b.Stride, 0) : null;
}
