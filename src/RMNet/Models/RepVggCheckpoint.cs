using RMNet.Blocks;
using RMNet.Plain;
using RMNet.Rm;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Models;

/// <summary>
/// A RepVGG checkpoint (official names, train-time or deploy form). Its plain form is RepVGG's own deploy
/// form: each block's branches merged into one 3x3 conv by the graph engine's branch merge (<see cref="Lowering.OfficialRepVgg"/>), followed by ReLU.
/// </summary>
internal sealed class RepVggCheckpoint : ISourceModel
{
    RepVggCheckpoint(StateDict weights, RepVggSpec spec) => (Weights, Spec) = (weights, spec);

    /// <summary>The weights.</summary>
    public StateDict Weights { get; }

    /// <summary>The layout.</summary>
    public RepVggSpec Spec { get; }

    /// <summary>Reads the layout from <paramref name="sd"/>; <paramref name="numClasses"/>, where given, must match <c>linear</c>.</summary>
    public static RepVggCheckpoint FromStateDict(StateDict sd, int? numClasses = null, bool allowNonFinite = false)
    {
        WeightChecks.Check(sd, allowNonFinite);
        var spec = RepVggSpec.Detect(sd);
        if (numClasses is int n && n != spec.NumClasses)
            throw new ModelInputException(sd.Source, $"--num-classes {n} contradicts the checkpoint: 'linear.weight' has {spec.NumClasses} outputs");
        return new RepVggCheckpoint(sd, spec);
    }

    /// <inheritdoc />
    public string Source => Weights.Source;
    /// <inheritdoc />
    public string Family => "repvgg";
    /// <inheritdoc />
    public string DisplayName => Spec.DisplayName;
    /// <inheritdoc />
    public string Description => $"{Spec.DisplayName} ({Spec.Blocks.Count} RepVGG blocks{(Spec.Blocks.Any(b => b.Groups > 1) ? ", grouped" : "")}" +
        $"{(Spec.Blocks.All(b => b.Deploy) ? ", deploy form" : "")}, {Spec.NumClasses} classes)";
    /// <inheritdoc />
    public int BlockCount => Spec.Blocks.Count;
    /// <inheritdoc />
    public int NumClasses => Spec.NumClasses;

    /// <inheritdoc />
    public IReadOnlyList<StageCost> CostByStage(int height, int width)
    {
        var stages = new List<StageCost>();
        long h = height, w = width;
        foreach (var group in Spec.Blocks.GroupBy(b => b.Stage))
        {
            long parameters = 0, macs = 0;
            foreach (var b in group)
            {
                parameters += Weights.ParameterCount(b.Prefix + ".");
                (h, w) = ((h + 2 - 3) / b.Stride + 1, (w + 2 - 3) / b.Stride + 1);
                long perGroupIn = b.InChannels / b.Groups;
                macs += h * w * b.OutChannels * perGroupIn * (b.Deploy ? 9 : 10);
            }
            stages.Add(new StageCost($"stage{group.Key}", parameters, macs));
        }
        var fc = Weights.Require("linear.weight");
        stages.Add(new StageCost("head", fc.numel() + Weights.Require("linear.bias").numel(), fc.numel()));
        return stages;
    }

    /// <inheritdoc />
    public nn.Module<Tensor, Tensor> CreateModule() => RepVgg.FromStateDict(Spec, Weights);

    /// <summary>The deploy form. <paramref name="mode"/> does not apply (RepVGG has no residual chain to reserve).</summary>
    public PlainModel ToPlain(RmMode mode = RmMode.Grouped, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default) =>
        Lowering.SourceGraphs.ToPlain(this, mode, NegativeInputMode.PRelu, progress, cancellationToken);

    /// <inheritdoc />
    public void Dispose() => Weights.Dispose();
}
