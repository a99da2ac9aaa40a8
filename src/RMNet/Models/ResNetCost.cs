namespace RMNet.Models;

/// <summary>Cost of one part of a network.</summary>
/// <param name="Stage">"stem", "layer1".."layer4", "head", or "total".</param>
/// <param name="Parameters">Weights and biases.</param>
/// <param name="Macs">Multiply-accumulates for one image.</param>
public sealed record StageCost(string Stage, long Parameters, long Macs);

/// <summary>Parameter and multiply-accumulate counts of the original (residual) network, from its layout.</summary>
internal static class ResNetCost
{
    /// <summary>Parameters as torchvision counts them (conv, BN affine and fc weights; no BN running statistics).</summary>
    public static long Parameters(ResNetSpec spec) => ByStage(spec, 224, 224).Sum(s => s.Parameters);

    /// <summary>Multiply-accumulates of convs and fc for one image of <paramref name="height"/> x <paramref name="width"/>.</summary>
    public static long MultiplyAccumulates(ResNetSpec spec, int height, int width) => ByStage(spec, height, width).Sum(s => s.Macs);

    /// <summary>Parameters and MACs of the stem, each stage and the head.</summary>
    public static IReadOnlyList<StageCost> ByStage(ResNetSpec spec, int height, int width)
    {
        var parameters = spec.ExpectedParameters()
            .Where(p => !p.Key.EndsWith("running_mean", StringComparison.Ordinal) && !p.Key.EndsWith("running_var", StringComparison.Ordinal))
            .GroupBy(p => StageOf(p.Key))
            .ToDictionary(g => g.Key, g => g.Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b)));
        var macs = new Dictionary<string, long>();
        int k = spec.StemKernel;
        long hs = Out(height, k, spec.StemStride, spec.StemPadding), ws = Out(width, k, spec.StemStride, spec.StemPadding);
        macs["stem"] = hs * ws * spec.StemWidth * spec.InputChannels * k * k;
        foreach (var (b, h, w, ho, wo) in BlockSizes(spec, height, width))
        {
            long m = spec.Block == BlockKind.Basic
                ? ho * wo * b.Width * b.InChannels * 9 + ho * wo * b.OutChannels * b.Width * 9
                : h * w * b.Width * b.InChannels + ho * wo * b.Width * (b.Width / b.Groups) * 9 + ho * wo * b.OutChannels * b.Width;
            if (b.HasProjection) m += ho * wo * b.OutChannels * b.InChannels;
            // SE's two 1x1 convs on the pooled [C, 1, 1], counted as PyTorch's hooks on every Conv2d count them.
            if (spec.SeChannels is { } se) m += 2L * se[b.Stage] * b.OutChannels;
            string stage = $"layer{b.Stage + 1}";
            macs[stage] = macs.GetValueOrDefault(stage) + m;
        }
        macs["head"] = (long)spec.FeatureChannels * spec.NumClasses;
        return Stages(spec).Select(s => new StageCost(s, parameters.GetValueOrDefault(s), macs.GetValueOrDefault(s))).ToList();
    }

    /// <summary>
    /// Every block with its input and output height and width for an image of <paramref name="height"/> x
    /// <paramref name="width"/>: the stem (and max pool) first, then each block's stride.
    /// </summary>
    public static IEnumerable<(BlockSpec Block, long InH, long InW, long OutH, long OutW)> BlockSizes(ResNetSpec spec, int height, int width)
    {
        long h = Out(height, spec.StemKernel, spec.StemStride, spec.StemPadding), w = Out(width, spec.StemKernel, spec.StemStride, spec.StemPadding);
        if (spec.StemMaxPool) { h = Out(h, 3, 2, 1); w = Out(w, 3, 2, 1); }
        foreach (var b in spec.Blocks())
        {
            long ho = Out(h, 3, b.Stride, 1), wo = Out(w, 3, b.Stride, 1);
            yield return (b, h, w, ho, wo);
            (h, w) = (ho, wo);
        }
    }

    /// <summary>The layout's stages in network order: stem, layer1..layerN, head.</summary>
    public static IEnumerable<string> Stages(ResNetSpec spec) =>
        Enumerable.Range(1, spec.StageCount).Select(s => $"layer{s}").Prepend("stem").Append("head");

    /// <summary>The stage a torchvision state-dict key belongs to.</summary>
    public static string StageOf(string key) =>
        key.StartsWith("layer", StringComparison.Ordinal) ? key[..6] : key.StartsWith("fc.", StringComparison.Ordinal) ? "head" : "stem";

    static long Out(long size, int k, int s, int p) => (size + 2 * p - k) / s + 1;
}
