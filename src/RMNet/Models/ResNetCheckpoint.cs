using RMNet.Blocks;
using RMNet.IO;
using RMNet.Plain;
using RMNet.Rm;

namespace RMNet.Models;

/// <summary>A ResNet checkpoint read from a file, with its layout detected or given, ready to run or convert.</summary>
public sealed class ResNetCheckpoint : ISourceModel
{
    ResNetCheckpoint(StateDict weights, ResNetSpec spec) => (Weights, Spec) = (weights, spec);

    /// <summary>The weights, torchvision names, wrappers and <c>module.</c> prefixes removed.</summary>
    public StateDict Weights { get; }

    /// <summary>The layout.</summary>
    public ResNetSpec Spec { get; }

    /// <inheritdoc />
    public string Source => Weights.Source;

    /// <inheritdoc />
    public string Family => "resnet";

    /// <inheritdoc />
    public string DisplayName => Spec.DisplayName;

    /// <inheritdoc />
    public string Description => $"{Spec.DisplayName} ({Spec.Block} blocks {string.Join("-", Spec.Layers)}, {Spec.NumClasses} classes)";

    /// <inheritdoc />
    public int BlockCount => Spec.Blocks().Count();

    /// <inheritdoc />
    public int NumClasses => Spec.NumClasses;

    /// <inheritdoc />
    public int InputChannels => Spec.InputChannels;

    /// <inheritdoc />
    public IReadOnlyList<StageCost> CostByStage(int height, int width) => ResNetCost.ByStage(Spec, height, width);

    /// <summary>
    /// Reads <paramref name="path"/>. <paramref name="arch"/> is <c>auto</c> (detect from names and shapes) or a
    /// name from <see cref="ResNetSpec.KnownNames"/>; <paramref name="numClasses"/>, where given, must match the
    /// checkpoint's classifier. Contradictions, NaN/Inf weights (unless <paramref name="allowNonFinite"/>) and
    /// invalid BN variances raise <see cref="ModelInputException"/> naming the key.
    /// </summary>
    public static ResNetCheckpoint Load(string path, string arch = "auto", int? numClasses = null, bool allowNonFinite = false) =>
        FromStateDict(CheckpointReader.Read(path), arch, numClasses, allowNonFinite);

    /// <summary>As <see cref="Load"/>, for weights already in memory.</summary>
    public static ResNetCheckpoint FromStateDict(StateDict sd, string arch = "auto", int? numClasses = null, bool allowNonFinite = false)
    {
        WeightChecks.Check(sd, allowNonFinite);
        ResNetSpec spec;
        if (arch == "auto")
            spec = ResNetDetector.Detect(sd);
        else
        {
            if (!ResNetSpec.KnownNames.Contains(arch))
                throw new ModelInputException(sd.Source, $"unknown --arch '{arch}'; known: auto, {string.Join(", ", ResNetSpec.KnownNames)}");
            int classes = sd.TryGetValue("fc.weight", out var fc) && fc.dim() == 2 ? (int)fc.shape[0] : numClasses ?? 1000;
            int channels = sd.TryGetValue("conv1.weight", out var stem) && stem.dim() == 4 ? (int)stem.shape[1] : 3;
            spec = ResNetSpec.Named(arch, classes, channels);
            ResNetDetector.Validate(sd, spec);
        }
        if (numClasses is int n && n != spec.NumClasses)
            throw new ModelInputException(sd.Source, $"--num-classes {n} contradicts the checkpoint: 'fc.weight' has {spec.NumClasses} outputs");
        return new ResNetCheckpoint(sd, spec);
    }

    /// <summary>The original, residual network as a TorchSharp module (eval mode), with torchvision's names.</summary>
    public TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> CreateModule() => CreateResNet();

    /// <summary>The original as RMNet's own <see cref="ResNet"/> module, for the callers that need its blocks (pruning, training).</summary>
    internal ResNet CreateResNet() => ResNet.FromStateDict(Spec, Weights);

    /// <summary>The equivalent plain network.</summary>
    /// <param name="mode">Grouped (default) or the paper's dense form for Bottleneck blocks.</param>
    /// <param name="progress">Told after each block; null for none.</param>
    /// <param name="cancellationToken">Checked after each block.</param>
    public PlainModel ToPlain(RmMode mode = RmMode.Grouped, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default) =>
        Lowering.SourceGraphs.ToPlain(this, mode, NegativeInputMode.PRelu, progress, cancellationToken);

    /// <inheritdoc />
    public void Dispose() => Weights.Dispose();
}
