using static TorchSharp.torch;

namespace RMNet.Weights;

/// <summary>
/// Two convs with nothing between them, the second 1x1 with stride 1, no padding and one group, are one conv:
/// <c>W = W2 W1</c>, <c>b = W2 b1 + b2</c> (docs/design.md section 7), exact at every position, borders included
/// (the 1x1 conv reads each output of the first, bias and all). Whether to merge is a cost decision both engines
/// make through <see cref="Pays"/>: the merged conv has the first conv's geometry and the second's outputs, so it
/// can hold far more weights than the pair (MobileNetV2's projection and the next block's 6x expansion).
/// </summary>
internal static class LinearConvMerge
{
    /// <summary>
    /// True where the merged conv costs no more than the pair, in weights per output position (both convs run at
    /// the same H and W, so this is also the MACs): <c>out2 * in1 * kh * kw</c> (the merged conv is dense) against
    /// <c>out1 * in1 / groups1 * kh * kw + out2 * out1</c>. A tie merges: one conv fewer for the same cost.
    /// </summary>
    public static bool Pays(long out1, long in1, long kernelH, long kernelW, long groups1, long out2) =>
        out2 * in1 * kernelH * kernelW <= out1 * (in1 / groups1) * kernelH * kernelW + out2 * out1;

    /// <summary>The merged weights (float64) of a dense first conv <paramref name="w1"/> and a 1x1 second conv <paramref name="w2"/>.</summary>
    public static (Tensor W, Tensor B) Merge(Tensor w1, Tensor b1, Tensor w2, Tensor b2)
    {
        var second = w2.to_type(ScalarType.Float64).flatten(1);     // [out2, out1]
        var first = w1.to_type(ScalarType.Float64).flatten(1);      // [out1, in1*kh*kw]
        var w = second.matmul(first).reshape(new[] { second.shape[0] }.Concat(w1.shape.Skip(1)).ToArray());
        var b = second.matmul(b1.to_type(ScalarType.Float64)) + b2.to_type(ScalarType.Float64);
        return (w, b);
    }
}
