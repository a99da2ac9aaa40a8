using Onnx;
using RMNet.Models;

namespace RMNet.Lowering;

/// <summary>The original network of a checkpoint read by its family's loader, as the graph engine's graph: its family's lowering.</summary>
internal static class SourceGraphs
{
    /// <summary>
    /// <paramref name="model"/>'s residual network with every BatchNorm that follows a conv folded into it, as PyTorch
    /// exports it in eval mode: what <see cref="ISourceModel.ToPlain"/> converts, and the fair baseline of a benchmark.
    /// </summary>
    public static ModelProto Lower(ISourceModel model) => model switch
    {
        ResNetCheckpoint r => TorchvisionResNet.Lower(r.Weights, r.Spec),
        PreActCheckpoint p => CifarPreActResNet.Lower(p.Weights, p.Spec),
        IResNetCheckpoint i => ArcFaceIResNet.Lower(i.Weights, i.Spec),
        MobileNetV2Checkpoint m => TorchvisionMobileNetV2.Lower(m.Weights, m.Spec),
        RepVggCheckpoint v => OfficialRepVgg.Lower(v.Weights, v.Spec),
        _ => throw new ArgumentException($"no lowering for {model.GetType().Name}", nameof(model)),
    };
}
