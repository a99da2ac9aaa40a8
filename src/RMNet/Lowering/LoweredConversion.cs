using Onnx;
using RMNet.Onnx;
using RMNet.Plain;

namespace RMNet.Lowering;

/// <summary>
/// A checkpoint family's conversion through the graph engine: its lowered graph through the passes
/// (<see cref="OnnxConversion"/>), read back as a <see cref="PlainModel"/> (<see cref="PlainGraphReader"/>). What a family's
/// <see cref="Models.ISourceModel.ToPlain"/> does, so that a checkpoint and the ONNX export of the same network give the
/// same plain network by construction.
/// </summary>
internal static class LoweredConversion
{
    /// <summary>
    /// The plain network of <paramref name="lowered"/> (rewritten in place), its layers tagged with the stages of
    /// <paramref name="layout"/> for per-stage costs where given. A residual join the passes cannot make plain raises <see cref="RmException"/> naming it:
    /// a checkpoint family's lowering only builds blocks the passes take, so that is rmnet's own failure, never kept quietly.
    /// </summary>
    public static PlainModel ToPlain(ModelProto lowered, string source, Rm.RmMode mode, Rm.NegativeInputMode negative,
        IProgress<ProgressStep>? progress, CancellationToken cancellationToken, LoweredLayout? layout, int? fixedInputSize = null)
    {
        var result = OnnxConversion.Convert(lowered, source, mode, fixedInputSize ?? 224, negative, progress, cancellationToken);
        if (result.Joins.FirstOrDefault(j => j.Remains) is { } kept)
            throw new RmException($"{source}: the residual join '{kept.Name}' was not made plain ({kept.Reason})");
        var plain = PlainGraphReader.Read(result.Model, source, layout);
        // The plain model's layers share the graph's weights: once the graph lets go, disposing the model frees them at once.
        TensorMemory.Release(result.Model);
        return new PlainModel(plain.Layers, plain.InputChannels)
        {
            LayerStages = plain.LayerStages, FixedInputSize = fixedInputSize, ZeroChannels = result.Blocks.Sum(b => b.ZeroChannels),
        };
    }
}
