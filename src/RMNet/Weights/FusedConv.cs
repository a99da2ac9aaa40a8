using RMNet.Plain;
using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Weights;

/// <summary>A convolution with BN already folded in (float64), together with its geometry.</summary>
/// <param name="Weights">Kernel [out, in/groups, kh, kw] and bias [out], float64.</param>
/// <param name="Stride">Stride, the same on both axes.</param>
/// <param name="Padding">Begin/end padding.</param>
/// <param name="Groups">Groups.</param>
public sealed record FusedConv(ConvWeights Weights, int Stride, Padding2d Padding, int Groups = 1)
{
    /// <summary>Output channels.</summary>
    public long OutChannels => Weights.Weight.shape[0];
    /// <summary>Input channels.</summary>
    public long InChannels => Weights.Weight.shape[1] * Groups;
    /// <summary>Kernel height.</summary>
    public int KernelH => (int)Weights.Weight.shape[2];
    /// <summary>Kernel width.</summary>
    public int KernelW => (int)Weights.Weight.shape[3];

    /// <summary>The kernel with groups expanded to a dense [out, in, kh, kw] kernel.</summary>
    internal Tensor DenseKernel() => Kernels.Ungroup(Weights.Weight, Groups);

    /// <summary>The plain layer: weights cast once to float32.</summary>
    internal ConvLayer ToLayer() => new(Weights.Weight.to_type(ScalarType.Float32), Weights.BiasOrZeros().to_type(ScalarType.Float32),
        Stride, Stride, Padding, Groups);
}
