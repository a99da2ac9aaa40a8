using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Weights;

/// <summary>Folds an inference-time BatchNorm into the convolution before it (RepVGG style), in float64.</summary>
public static class BatchNormFusion
{
    /// <summary>
    /// conv then BN equals one conv with W' = W * t and b' = beta + (b - mean) * t, t = gamma / sqrt(var + eps),
    /// t applied per output channel. Returns float64 tensors.
    /// </summary>
    public static ConvWeights Fuse(ConvWeights conv, BatchNormWeights bn)
    {
        var c = conv.ToFloat64();
        var t = F64(bn.Gamma) / (F64(bn.Var) + bn.Eps).sqrt();
        var weight = c.Weight * t.reshape(-1, 1, 1, 1);
        var bias = F64(bn.Beta) + (c.BiasOrZeros() - F64(bn.Mean)) * t;
        return new ConvWeights(weight, bias);
    }

    static Tensor F64(Tensor t) => t.to_type(ScalarType.Float64);
}
