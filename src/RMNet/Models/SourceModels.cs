using RMNet.IO;

namespace RMNet.Models;

/// <summary>Opens a checkpoint as the family its names say it is: RepVGG's official names, else a torchvision ResNet.</summary>
public static class SourceModels
{
    /// <summary>Every name <c>--arch</c> accepts besides <c>auto</c>.</summary>
    public static IEnumerable<string> KnownNames => ResNetSpec.KnownNames.Concat(RepVggSpec.Variants.Keys)
        .Concat(new[] { "preact_resnet18", "preact_resnet34", "preact_resnet50", "mobilenet_v2", "iresnet18", "iresnet34", "iresnet50", "iresnet100", "iresnet200", "iresnet2060" });

    /// <summary>Reads <paramref name="path"/> and recognises its family and layout.</summary>
    /// <param name="path">The checkpoint.</param>
    /// <param name="arch"><c>auto</c> or a layout name.</param>
    /// <param name="numClasses">Expected classifier outputs, or null.</param>
    /// <param name="allowNonFinite">Accept NaN/Inf weights.</param>
    /// <param name="negative">How families whose block inputs can be negative carry them.</param>
    /// <param name="weightsKey">The training checkpoint's key to take the weights from (null: the usual ones).</param>
    /// <param name="read">Told the state dict read (its key and removed prefix), before the family is recognised.</param>
    public static ISourceModel Load(string path, string arch = "auto", int? numClasses = null, bool allowNonFinite = false,
        Rm.NegativeInputMode negative = Rm.NegativeInputMode.PRelu, string? weightsKey = null, Action<StateDict>? read = null)
    {
        var sd = CheckpointReader.Read(path, weightsKey);
        read?.Invoke(sd);
        return FromStateDict(sd, arch, numClasses, allowNonFinite, negative);
    }

    /// <summary>As <see cref="Load"/>, for weights in memory.</summary>
    public static ISourceModel FromStateDict(StateDict sd, string arch = "auto", int? numClasses = null, bool allowNonFinite = false,
        Rm.NegativeInputMode negative = Rm.NegativeInputMode.PRelu)
    {
        if (arch != "auto" && !KnownNames.Contains(arch))
            throw new ModelInputException(sd.Source, $"unknown --arch '{arch}'; known: auto, {string.Join(", ", KnownNames)}");
        if (sd.Count > 0 && sd.Keys.All(k => k.StartsWith("layers.", StringComparison.Ordinal)) && File.Exists(sd.Source) && PlainModelFile.IsPlain(sd.Source))
            throw new ModelInputException(sd.Source, "already a plain network written by rmnet (it carries its architecture): there is nothing to convert; inspect, verify and bench read it as it is");
        if (sd.Count > 0 && sd.Keys.All(k => k.StartsWith("layers.", StringComparison.Ordinal)))
            throw new ModelInputException(sd.Source, "a plain network's weights (layers.{i}.*) without its architecture, as rmnet wrote .pth files before they carried it: "
                + "rmnet verify still checks it against its original; convert the original again for a file inspect, bench and PyTorch can load");
        if (IResNetSpec.Matches(sd))
        {
            var iresnet = IResNetCheckpoint.FromStateDict(sd, numClasses, allowNonFinite, negative);
            if (arch != "auto" && !(iresnet.Spec.Name ?? "").StartsWith(arch, StringComparison.Ordinal))
                throw new ModelInputException(sd.Source, $"--arch {arch} contradicts the checkpoint, which is {iresnet.DisplayName}");
            return iresnet;
        }
        if (MobileNetV2Spec.Matches(sd))
        {
            if (arch is not ("auto" or "mobilenet_v2"))
                throw new ModelInputException(sd.Source, $"--arch {arch} contradicts the checkpoint, which is a MobileNetV2");
            return MobileNetV2Checkpoint.FromStateDict(sd, numClasses, allowNonFinite);
        }
        if (PreActResNetSpec.Matches(sd))
        {
            var preact = PreActCheckpoint.FromStateDict(sd, numClasses, allowNonFinite, negative);
            if (arch != "auto" && arch != preact.Spec.Name)
                throw new ModelInputException(sd.Source, $"--arch {arch} contradicts the checkpoint, which is {preact.DisplayName}");
            return preact;
        }
        if (RepVggSpec.Matches(sd))
        {
            var repvgg = RepVggCheckpoint.FromStateDict(sd, numClasses, allowNonFinite);
            if (arch != "auto" && arch != repvgg.Spec.Name)
                throw new ModelInputException(sd.Source, ResNetSpec.KnownNames.Contains(arch) || RepVggSpec.Variants.ContainsKey(arch)
                    ? $"--arch {arch} contradicts the checkpoint, which is {repvgg.DisplayName}"
                    : $"unknown --arch '{arch}'; known: auto, {string.Join(", ", KnownNames)}");
            return repvgg;
        }
        if (RepVggSpec.Variants.ContainsKey(arch))
            throw new ModelInputException(sd.Source, $"--arch {arch} contradicts the checkpoint: no 'stage0.rbr_dense.conv.weight'");
        return ResNetCheckpoint.FromStateDict(sd, arch, numClasses, allowNonFinite);
    }
}
