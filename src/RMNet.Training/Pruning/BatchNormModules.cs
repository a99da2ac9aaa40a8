using RMNet.Weights;
using TorchSharp.Modules;

namespace RMNet.Pruning;

/// <summary>The bridge from trainable BatchNorm modules to the weight math, which takes tensors, not modules.</summary>
internal static class BatchNormModules
{
    /// <summary>What <paramref name="bn"/> computes in eval mode: its weight, shift, running statistics and eps.</summary>
    public static BatchNormWeights InferenceWeights(this BatchNorm2d bn) =>
        new(bn.weight!.detach(), bn.bias!.detach(), bn.running_mean!, bn.running_var!, bn.eps);
}
