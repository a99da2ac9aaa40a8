using static TorchSharp.torch;

namespace RMNet.Weights;

/// <summary>
/// A 1x1 conv then a kxk conv, both in the same number of groups, with nothing between them, as one kxk conv: per
/// group <c>W[o, i] = sum_m W2[o, m] W1[m, i]</c> (each tap of W2 scaled) and <c>b = b2 + sum over m and taps of
/// W2[o, m] b1[m]</c>. Exact at the borders where the 1x1 conv's output is padded with its bias, the value it gives a
/// zero input, as zero-padding the input in front of it does: DBB's BNAndPad after a 1x1 conv is that padding.
/// </summary>
internal static class PointwiseThenConv
{
    /// <summary>The merged weights (float64) of 1x1 <paramref name="first"/> then <paramref name="second"/>, in <paramref name="groups"/> groups.</summary>
    public static ConvWeights Merge(ConvWeights first, ConvWeights second, long groups)
    {
        var w1 = first.Weight.to_type(ScalarType.Float64);
        var w2 = second.Weight.to_type(ScalarType.Float64);
        long mid = w1.shape[0], outC = w2.shape[0], inPerGroup = w1.shape[1], kh = w2.shape[2], kw = w2.shape[3];
        if (w1.shape[2] != 1 || w1.shape[3] != 1 || mid % groups != 0 || outC % groups != 0 || w2.shape[1] != mid / groups)
            throw new ArgumentException($"a 1x1 conv [{string.Join(", ", w1.shape)}] does not feed a conv [{string.Join(", ", w2.shape)}] in {groups} groups");
        long midPerGroup = mid / groups, outPerGroup = outC / groups;
        var a = w1.reshape(groups, midPerGroup, inPerGroup);
        var b = w2.reshape(groups, outPerGroup, midPerGroup, kh, kw);
        var weight = einsum("gomhw,gmi->goihw", b, a).reshape(outC, inPerGroup, kh, kw);
        // Each output channel's taps all read the first conv's bias (inside the map and in the padding alike).
        var firstBias = first.BiasOrZeros().to_type(ScalarType.Float64).reshape(groups, 1, midPerGroup);
        var bias = second.BiasOrZeros().to_type(ScalarType.Float64) + (b.sum(new long[] { 3, 4 }) * firstBias).sum(2).reshape(outC);
        return new ConvWeights(weight, bias);
    }
}
