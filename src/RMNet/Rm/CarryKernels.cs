using RMNet.Models;
using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Rm;

/// <summary>
/// Kernel pieces shared by the transforms that carry a block input through extra channels (pre-activation
/// ResNets, IResNet): Dirac entries at given rows and columns, BN reading, and the single float32 cast.
/// </summary>
internal static class CarryKernels
{
    /// <summary>W[firstRow + r, firstCol + r, tap] = value for r in [0, count).</summary>
    public static void PutDirac(Tensor weight, long firstRow, long firstCol, long count, long tapH, long tapW, double value)
    {
        if (count == 0) return;
        var r = arange(count, dtype: ScalarType.Int64);
        weight.index_put_(full(count, value, dtype: ScalarType.Float64), r + firstRow, r + firstCol, tensor(tapH), tensor(tapW));
    }

    /// <summary>The plain conv: float64 weights cast to float32 once.</summary>
    public static ConvLayer Layer(Tensor weight, Tensor bias, int stride, Padding2d padding, int groups = 1) =>
        new(weight.to_type(ScalarType.Float32), bias.to_type(ScalarType.Float32), stride, stride, padding, groups);

    /// <summary>The inference BN under <paramref name="prefix"/> (weight, bias, running_mean, running_var).</summary>
    public static BatchNormWeights Bn(StateDict sd, string prefix, double eps = TorchvisionWeights.BatchNormEps) =>
        new(sd.Require($"{prefix}.weight"), sd.Require($"{prefix}.bias"), sd.Require($"{prefix}.running_mean"), sd.Require($"{prefix}.running_var"), eps);

    /// <summary>The rows of a conv followed by a BN: the BN folded in (float64).</summary>
    public static (Tensor W, Tensor B) BnRows(Tensor weight, Tensor bias, BatchNormWeights bn)
    {
        var fused = BatchNormFusion.Fuse(new ConvWeights(weight, bias), bn);
        return (fused.Weight, fused.BiasOrZeros());
    }
}
