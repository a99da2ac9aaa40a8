namespace RMNet.Models;

/// <summary>Parameter and multiply-accumulate counts of the original (residual) network, from its layout.</summary>
public static class ResNetCost
{
    /// <summary>Parameters as torchvision counts them (conv, BN affine and fc weights; no BN running statistics).</summary>
    public static long Parameters(ResNetSpec spec) => spec.ExpectedParameters()
        .Where(p => !p.Key.EndsWith("running_mean", StringComparison.Ordinal) && !p.Key.EndsWith("running_var", StringComparison.Ordinal))
        .Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b));

    /// <summary>Multiply-accumulates of convs and fc for one image of <paramref name="height"/> x <paramref name="width"/>.</summary>
    public static long MultiplyAccumulates(ResNetSpec spec, int height, int width)
    {
        long h = Out(height, 7, 2, 3), w = Out(width, 7, 2, 3);
        long total = h * w * spec.StemWidth * 3 * 49;
        h = Out(h, 3, 2, 1); w = Out(w, 3, 2, 1);
        foreach (var b in spec.Blocks())
        {
            long ho = Out(h, 3, b.Stride, 1), wo = Out(w, 3, b.Stride, 1);
            if (spec.Block == BlockKind.Basic)
                total += ho * wo * b.Width * b.InChannels * 9 + ho * wo * b.OutChannels * b.Width * 9;
            else
                total += h * w * b.Width * b.InChannels + ho * wo * b.Width * (b.Width / b.Groups) * 9 + ho * wo * b.OutChannels * b.Width;
            if (b.HasProjection) total += ho * wo * b.OutChannels * b.InChannels;
            (h, w) = (ho, wo);
        }
        return total + (long)spec.FeatureChannels * spec.NumClasses;
    }

    static long Out(long size, int k, int s, int p) => (size + 2 * p - k) / s + 1;
}
