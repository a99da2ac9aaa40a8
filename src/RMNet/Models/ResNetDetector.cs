using System.Text.RegularExpressions;

namespace RMNet.Models;

/// <summary>
/// Recognises a torchvision-layout ResNet from the names and shapes of a state dict, and checks a state dict
/// against a layout. Every mismatch is reported with the first key or shape that does not fit.
/// </summary>
internal static partial class ResNetDetector
{
    [GeneratedRegex(@"^layer([1-9])\.(\d+)\.")]
    private static partial Regex BlockKey();

    /// <summary>
    /// Detects the layout: Basic or Bottleneck from the presence of conv3, blocks per stage from the indices,
    /// widths and groups from the kernel shapes, num_classes from <c>fc</c>. The result is checked key by key.
    /// </summary>
    public static ResNetSpec Detect(StateDict sd)
    {
        var first = sd.Keys.FirstOrDefault() ?? throw new ModelInputException(sd.Source, "the checkpoint holds no tensors");
        if (!sd.TryGetValue("conv1.weight", out var stem) || stem.dim() != 4 || stem.shape[2] != stem.shape[3] || stem.shape[2] is not (3 or 7))
        {
            if (sd.ContainsKey("conv1.weight"))
                throw new ModelInputException(sd.Source, $"not a ResNet: key 'conv1.weight' has shape {Shape(sd["conv1.weight"].shape)}, expected [C, in, 7, 7] (torchvision) or [C, in, 3, 3] (CIFAR)");
            throw new ModelInputException(sd.Source, KnownFamilies.NotRecognised(sd));
        }
        var block = sd.ContainsKey("layer1.0.conv3.weight") ? BlockKind.Bottleneck : BlockKind.Basic;
        var layers = new int[9];
        foreach (var key in sd.Keys)
        {
            var m = BlockKey().Match(key);
            if (m.Success)
            {
                int s = int.Parse(m.Groups[1].Value) - 1;
                layers[s] = Math.Max(layers[s], int.Parse(m.Groups[2].Value) + 1);
            }
        }
        // torchvision's layouts have four stages, the CIFAR ones three.
        int stageCount = layers.Count(n => n > 0);
        if (stageCount is not (3 or 4) || layers.Take(stageCount).Any(n => n == 0))
        {
            int missing = Math.Max(0, Array.IndexOf(layers, 0));
            throw new ModelInputException(sd.Source, $"not a ResNet: no key 'layer{missing + 1}.0.conv1.weight'");
        }
        layers = layers[..stageCount];

        var planes = new int[stageCount];
        var widths = new int[stageCount];
        int groups = 1;
        for (int s = 0; s < stageCount; s++)
        {
            string p = $"layer{s + 1}.0";
            widths[s] = (int)Dim(sd, $"{p}.conv1.weight", 0);
            if (block == BlockKind.Basic)
            {
                // The stage's width is its output (conv2's); conv1's may be narrower in a channel-pruned network.
                planes[s] = (int)Dim(sd, $"{p}.conv2.weight", 0);
                widths[s] = planes[s];
            }
            else
            {
                long outC = Dim(sd, $"{p}.conv3.weight", 0);
                if (outC % 4 != 0)
                    throw new ModelInputException(sd.Source, $"key '{p}.conv3.weight' has {outC} output channels, not a multiple of the Bottleneck expansion 4");
                planes[s] = (int)(outC / 4);
                long inPerGroup = Dim(sd, $"{p}.conv2.weight", 1);
                if (inPerGroup <= 0 || widths[s] % inPerGroup != 0)
                    throw new ModelInputException(sd.Source, $"key '{p}.conv2.weight' has {inPerGroup} input channels per group, which does not divide width {widths[s]}");
                int g = (int)(widths[s] / inPerGroup);
                if (s > 0 && g != groups)
                    throw new ModelInputException(sd.Source, $"key '{p}.conv2.weight' implies {g} groups, earlier stages have {groups}");
                groups = g;
            }
        }
        // A backbone saved without its classifier (timm's num_classes=0, an fc replaced by Identity) has no 'fc'.
        if (!sd.ContainsKey("fc.weight"))
            throw new ModelInputException(sd.Source, "missing key 'fc.weight': a ResNet without its classifier 'fc' (a headless backbone); rmnet converts "
                + "whole classifiers: save the model with its 'fc' (any number of classes)");
        int numClasses = (int)Dim(sd, "fc.weight", 0);
        int[]? se = sd.ContainsKey("layer1.0.se.fc1.weight")
            ? Enumerable.Range(1, stageCount).Select(s => (int)Dim(sd, $"layer{s}.0.se.fc1.weight", 0)).ToArray() : null;
        var spec = new ResNetSpec(block, layers, (int)stem.shape[0], planes, widths, groups, numClasses)
        {
            SeChannels = se,
            InputChannels = (int)stem.shape[1],
            Stem = stem.shape[2] == 3 ? StemKind.Cifar : StemKind.ImageNet,
        };
        spec = spec with { BlockWidths = PrunedBlockWidths(sd, spec) };
        var named = ResNetSpec.KnownNames.Select(n => ResNetSpec.Named(n, numClasses, spec.InputChannels) with { SeChannels = se })
            .FirstOrDefault(n => n.SameLayout(spec));
        spec = named is null ? spec : named with { Name = (se is null ? "" : "se") + named.Name };
        Validate(sd, spec);
        return spec;
    }

    /// <summary>Per-block inner widths where the Basic blocks of a stage differ (a channel-pruned network), else null.</summary>
    static int[]? PrunedBlockWidths(StateDict sd, ResNetSpec spec)
    {
        if (spec.Block != BlockKind.Basic) return null;
        var widths = spec.Blocks().Select(b => (int)Dim(sd, $"{b.Prefix}.conv1.weight", 0)).ToArray();
        return widths.SequenceEqual(spec.Blocks().Select(b => b.Width)) ? null : widths;
    }

    /// <summary>
    /// Checks that the state dict holds exactly the parameters of <paramref name="spec"/> (BN
    /// <c>num_batches_tracked</c> counters aside) with the right shapes; throws naming the first that does not fit.
    /// </summary>
    public static void Validate(StateDict sd, ResNetSpec spec)
    {
        var expected = new HashSet<string>();
        foreach (var (key, shape) in spec.ExpectedParameters())
        {
            expected.Add(key);
            if (!sd.TryGetValue(key, out var t))
                throw new ModelInputException(sd.Source, $"missing key '{key}' expected for {spec.DisplayName}");
            if (!t.shape.SequenceEqual(shape))
                throw new ModelInputException(sd.Source, $"key '{key}' has shape {Shape(t.shape)}, expected {Shape(shape)} for {spec.DisplayName}");
        }
        foreach (var key in sd.Keys)
            if (!expected.Contains(key) && !key.EndsWith(".num_batches_tracked", StringComparison.Ordinal))
                throw new ModelInputException(sd.Source, $"unexpected key '{key}' for {spec.DisplayName}");
    }

    static long Dim(StateDict sd, string key, int dim)
    {
        var t = sd.Require(key);
        if (t.dim() <= dim)
            throw new ModelInputException(sd.Source, $"key '{key}' has shape {Shape(t.shape)}, expected at least {dim + 1} dimensions");
        return t.shape[dim];
    }

    internal static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";
}
