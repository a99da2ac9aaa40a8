using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Weights;

/// <summary>Folds an inference-time BatchNorm into the convolution before it (RepVGG style), in float64.</summary>
internal static class BatchNormFusion
{
    /// <summary>
    /// conv then BN equals one conv with W' = W * t and b' = beta + (b - mean) * t, t = gamma / sqrt(var + eps),
    /// t applied per output channel. Returns float64 tensors.
    /// </summary>
    public static ConvWeights Fuse(ConvWeights conv, BatchNormWeights bn)
    {
        var c = conv.ToFloat64();
        var t = Scale(bn);
        var weight = c.Weight * t.reshape(-1, 1, 1, 1);
        var bias = F64(bn.Beta) + (c.BiasOrZeros() - F64(bn.Mean)) * t;
        return new ConvWeights(weight, bias);
    }

    /// <summary>
    /// The per-channel scale t = gamma / sqrt(var + eps) (float64), computed in managed code: libtorch's vectorised sqrt (MKL's VML) can
    /// differ in the last bit with the thread split, which once in a while flips a float32 weight and makes two
    /// conversions of the same checkpoint differ. Math.Sqrt and the division are correctly rounded.
    /// </summary>
    public static Tensor Scale(BatchNormWeights bn)
    {
        var gamma = F64(bn.Gamma).contiguous().data<double>().ToArray();
        var variance = F64(bn.Var).contiguous().data<double>().ToArray();
        var t = new double[gamma.Length];
        for (int i = 0; i < t.Length; i++) t[i] = gamma[i] / Math.Sqrt(variance[i] + bn.Eps);
        return tensor(t, ScalarType.Float64);
    }

    static Tensor F64(Tensor t) => t.to_type(ScalarType.Float64);
}
