using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// A checkpoint whose family is lowered into the graph that the ONNX passes convert: the graph engine's front end for
/// checkpoints. It owns the state dict it was recognised in.
/// </summary>
/// <param name="Weights">The checkpoint's tensors.</param>
/// <param name="Description">The family and layout, e.g. "timm ResNet-D (deep stem, average-pooled shortcuts), Bottleneck blocks 3-4-6-3, 1000 classes".</param>
/// <param name="LowerWeights">Builds the graph from the weights.</param>
/// <param name="Layout">Its stages and blocks, for the report.</param>
/// <param name="BnEps">The BatchNorms' epsilon, which a state dict does not hold: the family's default unless the user gave one.</param>
internal sealed record LoweredCheckpoint(StateDict Weights, string Description, Func<StateDict, double, ModelProto> LowerWeights, LoweredLayout Layout, double BnEps = 1e-5) : IDisposable
{
    /// <summary>A re-parameterisable family (RepVGG, MobileOne, ACNet, DBB): its joins are sums of parallel branches, which fuse, not residual blocks.</summary>
    public bool MultiBranch { get; init; }

    /// <summary>A fresh graph of the network (the passes rewrite the one they get in place).</summary>
    public ModelProto Lower() => LowerWeights(Weights, BnEps);

    /// <inheritdoc />
    public void Dispose() => Weights.Dispose();
}

/// <summary>The checkpoint families recognised by their names alone, before the <c>Models/</c> families' loaders are tried (those are lowered too, <see cref="SourceGraphs"/>).</summary>
internal static class CheckpointLowerings
{
    /// <summary>
    /// The lowering for <paramref name="sd"/>'s names, or null where another loader takes it (refused where
    /// <paramref name="bnEps"/> is given: the other families convert with 1e-5).
    /// </summary>
    /// <param name="sd">The checkpoint's tensors, which the result then owns.</param>
    /// <param name="bnEps">The BatchNorms' epsilon where the user gave one; null for the family's default (1e-5 for every family here).</param>
    /// <param name="allowNonFinite">Accept NaN or infinite weights; a BatchNorm variance at or below -eps is refused regardless.</param>
    public static LoweredCheckpoint? Find(StateDict sd, double? bnEps = null, bool allowNonFinite = false)
    {
        var found = TimmResNet.Matches(sd) ? new LoweredCheckpoint(sd, TimmResNet.Describe(sd), TimmResNet.Lower, TimmResNet.Layout(sd))
            : HuggingFaceResNet.Matches(sd) ? new LoweredCheckpoint(sd, HuggingFaceResNet.Describe(sd), HuggingFaceResNet.Lower, HuggingFaceResNet.Layout(sd))
            : TorchvisionRegNet.Matches(sd) ? new LoweredCheckpoint(sd, TorchvisionRegNet.Describe(sd), TorchvisionRegNet.Lower, TorchvisionRegNet.Layout(sd))
            // Before RepVGG: a MobileOne in deploy form has RepVGG's names, with 1x1 pointwise blocks.
            : TimmMobileOne.Matches(sd) ? new LoweredCheckpoint(sd, TimmMobileOne.Describe(sd), TimmMobileOne.Lower, TimmMobileOne.Layout(sd)) { MultiBranch = true }
            : TimmRepVgg.Matches(sd) ? new LoweredCheckpoint(sd, TimmRepVgg.Describe(sd), TimmRepVgg.Lower, TimmRepVgg.Layout(sd)) { MultiBranch = true }
            : DbbMobileNet.Matches(sd) ? new LoweredCheckpoint(sd, DbbMobileNet.Describe(sd), DbbMobileNet.Lower, DbbMobileNet.Layout(sd)) { MultiBranch = true }
            // Not MultiBranch: its blocks' branch sums merge, but the network stays a residual one until its shortcuts are removed.
            : DbbResNet.Matches(sd) ? new LoweredCheckpoint(sd, DbbResNet.Describe(sd), DbbResNet.Lower, DbbResNet.Layout(sd))
            : AcnetRcNet.Matches(sd) ? new LoweredCheckpoint(sd, AcnetRcNet.Describe(sd), AcnetRcNet.Lower, AcnetRcNet.Layout(sd))
            : AcnetResNet.Matches(sd) ? new LoweredCheckpoint(sd, AcnetResNet.Describe(sd), AcnetResNet.Lower, AcnetResNet.Layout(sd))
            : null;
        if (found is null)
            return bnEps is null ? null
                : throw new ModelInputException(sd.Source, "--bn-eps applies to checkpoints lowered into the graph (timm ResNet-D, RepVGG and MobileOne, Hugging Face ResNet, " +
                    "torchvision RegNet, ACNet and DBB MobileNets and ResNets, ACNet's RCNet and ResNet); this family is read with PyTorch's default epsilon, 1e-5");
        if (bnEps is double eps) found = found with { BnEps = eps };
        // The same checks every family's weights get: the graph would carry NaN to every output otherwise.
        Models.WeightChecks.Check(sd, allowNonFinite, found.BnEps, savedEpsHonoured: true);
        return found;
    }
}
