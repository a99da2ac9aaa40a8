using RMNet.Blocks;
using RMNet.Plain;
using RMNet.Rm;
using static TorchSharp.torch;

namespace RMNet.Models;

/// <summary>A torchvision MobileNetV2 checkpoint; converts through the graph engine (<see cref="Lowering.TorchvisionMobileNetV2"/>).</summary>
internal sealed class MobileNetV2Checkpoint : ISourceModel
{
    MobileNetV2Checkpoint(StateDict weights, MobileNetV2Spec spec) => (Weights, Spec) = (weights, spec);

    /// <summary>The weights.</summary>
    public StateDict Weights { get; }
    /// <summary>The layout.</summary>
    public MobileNetV2Spec Spec { get; }

    /// <summary>Reads the layout; <paramref name="numClasses"/>, where given, must match the classifier.</summary>
    public static MobileNetV2Checkpoint FromStateDict(StateDict sd, int? numClasses = null, bool allowNonFinite = false)
    {
        WeightChecks.Check(sd, allowNonFinite);
        var spec = MobileNetV2Spec.Detect(sd);
        if (numClasses is int n && n != spec.NumClasses)
            throw new ModelInputException(sd.Source, $"--num-classes {n} contradicts the checkpoint: 'classifier.1.weight' has {spec.NumClasses} outputs");
        return new MobileNetV2Checkpoint(sd, spec);
    }

    /// <inheritdoc />
    public string Source => Weights.Source;
    /// <inheritdoc />
    public string Family => "mobilenet_v2";
    /// <inheritdoc />
    public string DisplayName => Spec.DisplayName;
    /// <inheritdoc />
    public string Description => $"{Spec.DisplayName} ({Spec.Blocks.Count} inverted residual blocks, {Spec.Blocks.Count(b => b.Residual)} with a residual, {Spec.NumClasses} classes)";
    /// <inheritdoc />
    public int BlockCount => Spec.Blocks.Count;
    /// <inheritdoc />
    public int NumClasses => Spec.NumClasses;

    /// <inheritdoc />
    public IReadOnlyList<StageCost> CostByStage(int height, int width)
    {
        string lastPrefix = $"features.{Spec.LastIndex}.";
        long all = Weights.ParameterCount(""), stem = Weights.ParameterCount("features.0."), head = Weights.ParameterCount(lastPrefix) + Weights.ParameterCount("classifier.");
        long h = (height + 2 - 3) / 2 + 1, w = (width + 2 - 3) / 2 + 1;
        long stemMacs = h * w * Weights.Require("features.0.0.weight").numel();
        long blockMacs = 0;
        foreach (var b in Spec.Blocks)
        {
            long ho = (h + 2 - 3) / b.Stride + 1, wo = (w + 2 - 3) / b.Stride + 1;
            blockMacs += (b.Expand ? h * w * b.Hidden * b.InChannels : 0) + ho * wo * b.Hidden * 9 + ho * wo * b.OutChannels * b.Hidden;
            (h, w) = (ho, wo);
        }
        return new[]
        {
            new StageCost("stem", stem, stemMacs),
            new StageCost("blocks", all - stem - head, blockMacs),
            new StageCost("head", head,
                h * w * Spec.LastWidth * Spec.Blocks[^1].OutChannels + Weights.Require("classifier.1.weight").numel()),
        };
    }

    /// <inheritdoc />
    public nn.Module<Tensor, Tensor> CreateModule()
    {
        var model = new MobileNetV2(Spec);
        Weights.LoadInto(model);
        return model;
    }

    /// <summary>The MobileNetV1-like plain network; <paramref name="mode"/> does not apply (depthwise convs are grouped by nature).</summary>
    public PlainModel ToPlain(RmMode mode = RmMode.Grouped, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default) =>
        Lowering.SourceGraphs.ToPlain(this, mode, NegativeInputMode.PRelu, progress, cancellationToken);

    /// <inheritdoc />
    public void Dispose() => Weights.Dispose();
}
