using Onnx;
using RMNet.Models;
using RMNet.Plain;

namespace RMNet.Lowering;

/// <summary>
/// The original network of a checkpoint read by its family's loader, as the graph engine's graph: its family's lowering,
/// and its conversion through the passes. The one place that says which lowering serves which family.
/// </summary>
internal static class SourceGraphs
{
    /// <summary>
    /// <paramref name="model"/>'s residual network with every BatchNorm that follows a conv folded into it, as PyTorch
    /// exports it in eval mode: what <see cref="ISourceModel.ToPlain"/> converts, and the fair baseline of a benchmark.
    /// </summary>
    public static ModelProto Lower(ISourceModel model) => Lowering(model).Lower();

    /// <summary>
    /// <paramref name="model"/>'s plain network (<see cref="LoweredConversion"/>): what each family's
    /// <see cref="ISourceModel.ToPlain"/> returns, with the family's stages and fixed input size.
    /// </summary>
    public static PlainModel ToPlain(ISourceModel model, Rm.RmMode mode, Rm.NegativeInputMode negative, IProgress<ProgressStep>? progress,
        CancellationToken cancellationToken)
    {
        var (lower, layout) = Lowering(model);
        return LoweredConversion.ToPlain(lower(), model.Source, mode, negative, progress, cancellationToken, layout, model.FixedInputSize);
    }

    static (Func<ModelProto> Lower, LoweredLayout? Layout) Lowering(ISourceModel model) => model switch
    {
        ResNetCheckpoint r => (() => TorchvisionResNet.Lower(r.Weights, r.Spec), TorchvisionResNet.Layout(r.Spec)),
        PreActCheckpoint p => (() => CifarPreActResNet.Lower(p.Weights, p.Spec), CifarPreActResNet.Layout(p.Spec)),
        IResNetCheckpoint i => (() => ArcFaceIResNet.Lower(i.Weights, i.Spec), ArcFaceIResNet.Layout(i.Spec)),
        MobileNetV2Checkpoint m => (() => TorchvisionMobileNetV2.Lower(m.Weights, m.Spec), TorchvisionMobileNetV2.Layout(m.Spec)),
        RepVggCheckpoint v => (() => OfficialRepVgg.Lower(v.Weights, v.Spec), OfficialRepVgg.Layout(v.Spec)),
        _ => throw new ArgumentException($"no lowering for {model.GetType().Name}", nameof(model)),
    };
}
