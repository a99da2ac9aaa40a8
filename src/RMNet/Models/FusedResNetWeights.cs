using RMNet.Weights;

namespace RMNet.Models;

/// <summary>
/// Where the RM transform of a ResNet takes its BN-folded weights from: torchvision's state dict as it is
/// (<see cref="Torchvision"/>), or with something folded in first (RM pruning's channel gates).
/// </summary>
/// <param name="Stem">The stem conv, BN folded.</param>
/// <param name="Branch">A block's residual branch, BN folded, in order.</param>
/// <param name="Projection">A block's projection shortcut, BN folded, or null for the identity.</param>
internal sealed record FusedResNetWeights(Func<FusedConv> Stem, Func<BlockSpec, IReadOnlyList<FusedConv>> Branch, Func<BlockSpec, FusedConv?> Projection)
{
    /// <summary>The weights of a torchvision-named state dict.</summary>
    public static FusedResNetWeights Torchvision(StateDict sd, ResNetSpec spec) => new(
        () => TorchvisionWeights.Stem(sd, spec), b => TorchvisionWeights.Branch(sd, spec, b), b => TorchvisionWeights.Projection(sd, b));
}
