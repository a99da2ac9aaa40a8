using RMNet.Blocks;
using RMNet.Plain;
using RMNet.Rm;
using static TorchSharp.torch;

namespace RMNet.Models;

/// <summary>A pre-activation ResNet checkpoint; converts through the graph engine (<see cref="Lowering.CifarPreActResNet"/>) in the chosen negative-input mode.</summary>
internal sealed class PreActCheckpoint : ISourceModel
{
    PreActCheckpoint(StateDict weights, PreActResNetSpec spec, NegativeInputMode negative) => (Weights, Spec, Negative) = (weights, spec, negative);

    /// <summary>The weights.</summary>
    public StateDict Weights { get; }
    /// <summary>The layout.</summary>
    public PreActResNetSpec Spec { get; }
    /// <summary>How the possibly negative block inputs are carried.</summary>
    public NegativeInputMode Negative { get; }

    /// <summary>Reads the layout; <paramref name="numClasses"/>, where given, must match <c>linear</c>.</summary>
    public static PreActCheckpoint FromStateDict(StateDict sd, int? numClasses = null, bool allowNonFinite = false, NegativeInputMode negative = NegativeInputMode.PRelu)
    {
        WeightChecks.Check(sd, allowNonFinite);
        var spec = PreActResNetSpec.Detect(sd);
        if (numClasses is int n && n != spec.NumClasses)
            throw new ModelInputException(sd.Source, $"--num-classes {n} contradicts the checkpoint: 'linear.weight' has {spec.NumClasses} outputs");
        return new PreActCheckpoint(sd, spec, negative);
    }

    /// <inheritdoc />
    public string Source => Weights.Source;
    /// <inheritdoc />
    public string Family => "preact-resnet";
    /// <inheritdoc />
    public string DisplayName => Spec.DisplayName;
    /// <inheritdoc />
    public string Description => $"{Spec.DisplayName} ({Spec.Blocks.Count} pre-activation {(Spec.Bottleneck ? "bottleneck" : "basic")} blocks, {Spec.NumClasses} classes)";
    /// <inheritdoc />
    public int BlockCount => Spec.Blocks.Count;
    /// <inheritdoc />
    public int NumClasses => Spec.NumClasses;

    /// <inheritdoc />
    public IReadOnlyList<StageCost> CostByStage(int height, int width)
    {
        // Parameters by name prefix; MACs from the conv shapes at each stage's resolution.
        var stages = new List<StageCost>();
        long h = height, w = width;
        var stem = Weights.Require("conv1.weight");
        stages.Add(new StageCost("stem", stem.numel(), h * w * stem.numel()));
        for (int s = 0; s < 4; s++)
        {
            string prefix = $"layer{s + 1}.";
            long parameters = Weights.ParameterCount(prefix);
            long macs = 0;
            foreach (var b in Spec.Blocks.Where(b => b.Stage == s))
            {
                long ho = (h - 1) / b.Stride + 1, wo = (w - 1) / b.Stride + 1;
                foreach (var kv in Weights.Where(kv => kv.Key.StartsWith(b.Prefix + ".", StringComparison.Ordinal) && kv.Value.dim() == 4))
                    macs += (Spec.Bottleneck && kv.Key.EndsWith("conv1.weight") ? h * w : ho * wo) * kv.Value.numel();
                (h, w) = (ho, wo);
            }
            stages.Add(new StageCost($"layer{s + 1}", parameters, macs));
        }
        var fc = Weights.Require("linear.weight");
        stages.Add(new StageCost("head", fc.numel() + Weights.Require("linear.bias").numel() + 2 * Weights.Require("bn.weight").numel(), fc.numel()));
        return stages;
    }

    /// <inheritdoc />
    public nn.Module<Tensor, Tensor> CreateModule()
    {
        var model = new PreActResNet(Spec, b => (Weights.Require($"{b.Prefix}.conv1.weight").shape[2], Weights.Require($"{b.Prefix}.conv2.weight").shape[2]));
        Weights.LoadInto(model);
        return model;
    }

    /// <summary>The plain network; <paramref name="mode"/> does not apply (inner convs are dense; these nets are small).</summary>
    public PlainModel ToPlain(RmMode mode = RmMode.Grouped, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default) =>
        Lowering.SourceGraphs.ToPlain(this, mode, Negative, progress, cancellationToken);

    /// <inheritdoc />
    public void Dispose() => Weights.Dispose();
}
