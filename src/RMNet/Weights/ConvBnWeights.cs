using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Weights;

/// <summary>The weights of a convolution: kernel [out, in/groups, kh, kw] and an optional bias [out].</summary>
/// <param name="Weight">The kernel.</param>
/// <param name="Bias">The bias, or null where the conv has none.</param>
public sealed record ConvWeights(Tensor Weight, Tensor? Bias)
{
    /// <summary>Output channels.</summary>
    public long OutChannels => Weight.shape[0];

    /// <summary>The bias, or zeros of the kernel's dtype where the conv has none.</summary>
    public Tensor BiasOrZeros() => Bias ?? zeros(OutChannels, dtype: Weight.dtype);

    /// <summary>Both tensors as float64, the precision all weight arithmetic here runs in.</summary>
    public ConvWeights ToFloat64() => new(Weight.to_type(ScalarType.Float64), Bias?.to_type(ScalarType.Float64));
}

/// <summary>Inference-time BatchNorm parameters.</summary>
/// <param name="Gamma">Scale (BN weight).</param>
/// <param name="Beta">Shift (BN bias).</param>
/// <param name="Mean">Running mean.</param>
/// <param name="Var">Running variance.</param>
/// <param name="Eps">Epsilon added to the variance.</param>
public sealed record BatchNormWeights(Tensor Gamma, Tensor Beta, Tensor Mean, Tensor Var, double Eps = 1e-5);
