using RMNet.Blocks;
using RMNet.Plain;
using RMNet.Rm;
using static TorchSharp.torch;

namespace RMNet.Models;

/// <summary>An InsightFace IResNet checkpoint; converts through the graph engine (<see cref="Lowering.ArcFaceIResNet"/>). The output is the embedding.</summary>
internal sealed class IResNetCheckpoint : ISourceModel
{
    IResNetCheckpoint(StateDict weights, IResNetSpec spec, NegativeInputMode negative) => (Weights, Spec, Negative) = (weights, spec, negative);

    /// <summary>The weights.</summary>
    public StateDict Weights { get; }
    /// <summary>The layout.</summary>
    public IResNetSpec Spec { get; }
    /// <summary>How the possibly negative block inputs are carried.</summary>
    public NegativeInputMode Negative { get; }

    /// <summary>Reads the layout; <paramref name="numFeatures"/>, where given, must match <c>fc</c>.</summary>
    public static IResNetCheckpoint FromStateDict(StateDict sd, int? numFeatures = null, bool allowNonFinite = false, NegativeInputMode negative = NegativeInputMode.PRelu)
    {
        WeightChecks.Check(sd, allowNonFinite);
        var spec = IResNetSpec.Detect(sd);
        if (numFeatures is int n && n != spec.NumFeatures)
            throw new ModelInputException(sd.Source, $"--num-classes {n} contradicts the checkpoint: 'fc.weight' has {spec.NumFeatures} outputs (embedding size)");
        return new IResNetCheckpoint(sd, spec, negative);
    }

    /// <inheritdoc />
    public string Source => Weights.Source;
    /// <inheritdoc />
    public string Family => "iresnet";
    /// <inheritdoc />
    public string DisplayName => Spec.DisplayName;
    /// <inheritdoc />
    public string Description => $"{Spec.DisplayName} ({Spec.Blocks.Count} IBasicBlocks, {Spec.NumFeatures}-d embedding, input {Spec.InputSize}x{Spec.InputSize})";
    /// <inheritdoc />
    public int BlockCount => Spec.Blocks.Count;
    /// <inheritdoc />
    public int NumClasses => Spec.NumFeatures;
    /// <inheritdoc />
    public int? FixedInputSize => Spec.InputSize;

    /// <inheritdoc />
    public IReadOnlyList<StageCost> CostByStage(int height, int width)
    {
        // IResNet's head fixes the input size (flatten + fc); costs are given for that size.
        long h = Spec.InputSize, w = Spec.InputSize;
        long Params(string prefix) => Weights.ParameterCount(prefix);
        var stages = new List<StageCost> { new("stem", Params("conv1.") + Params("bn1.") + Params("prelu."), h * w * Weights.Require("conv1.weight").numel()) };
        for (int s = 0; s < 4; s++)
        {
            long macs = 0;
            foreach (var b in Spec.Blocks.Where(b => b.Stage == s))
            {
                long ho = (h - 1) / b.Stride + 1, wo = (w - 1) / b.Stride + 1;
                macs += h * w * b.Planes * b.InChannels * 9 + ho * wo * b.Planes * b.Planes * 9 + (b.HasProjection ? ho * wo * b.Planes * b.InChannels : 0);
                (h, w) = (ho, wo);
            }
            stages.Add(new StageCost($"layer{s + 1}", Params($"layer{s + 1}."), macs));
        }
        stages.Add(new StageCost("head", Params("bn2.") + Params("fc.") + Params("features."), Weights.Require("fc.weight").numel()));
        return stages;
    }

    /// <inheritdoc />
    public nn.Module<Tensor, Tensor> CreateModule()
    {
        var model = new IResNet(Spec);
        Weights.LoadInto(model);
        return model;
    }

    /// <summary>The plain network; <paramref name="mode"/> does not apply (IBasicBlocks have no middle conv).</summary>
    public PlainModel ToPlain(RmMode mode = RmMode.Grouped, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default) =>
        Lowering.SourceGraphs.ToPlain(this, mode, Negative, progress, cancellationToken);

    /// <inheritdoc />
    public void Dispose() => Weights.Dispose();
}
