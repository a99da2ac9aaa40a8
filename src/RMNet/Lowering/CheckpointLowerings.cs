using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// A checkpoint whose family is lowered into the graph that the ONNX passes convert: the graph engine's front end for
/// checkpoints. It owns the state dict it was recognised in.
/// </summary>
/// <param name="Weights">The checkpoint's tensors.</param>
/// <param name="Description">The family and layout, e.g. "timm ResNet-D (deep stem, average-pooled shortcuts), Bottleneck blocks 3-4-6-3, 1000 classes".</param>
/// <param name="LowerWeights">Builds the graph from the weights.</param>
internal sealed record LoweredCheckpoint(StateDict Weights, string Description, Func<StateDict, ModelProto> LowerWeights) : IDisposable
{
    /// <summary>A fresh graph of the network (the passes rewrite the one they get in place).</summary>
    public ModelProto Lower() => LowerWeights(Weights);

    /// <inheritdoc />
    public void Dispose() => Weights.Dispose();
}

/// <summary>The checkpoint families lowered into the graph rather than converted by a family's own transform (<c>Rm/</c>).</summary>
internal static class CheckpointLowerings
{
    /// <summary>The lowering for <paramref name="sd"/>'s names, or null where another loader takes it.</summary>
    public static LoweredCheckpoint? Find(StateDict sd) =>
        TimmResNet.Matches(sd) ? new LoweredCheckpoint(sd, TimmResNet.Describe(sd), w => TimmResNet.Lower(w))
        : HuggingFaceResNet.Matches(sd) ? new LoweredCheckpoint(sd, HuggingFaceResNet.Describe(sd), w => HuggingFaceResNet.Lower(w))
        : TorchvisionRegNet.Matches(sd) ? new LoweredCheckpoint(sd, TorchvisionRegNet.Describe(sd), w => TorchvisionRegNet.Lower(w))
        : null;
}
