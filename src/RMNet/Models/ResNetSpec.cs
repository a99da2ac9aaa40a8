namespace RMNet.Models;

/// <summary>The residual block type of a ResNet.</summary>
public enum BlockKind
{
    /// <summary>Two 3x3 convs (ResNet-18/34).</summary>
    Basic,
    /// <summary>1x1, 3x3 (possibly grouped), 1x1 with expansion 4 (ResNet-50 and up, ResNeXt, Wide ResNet).</summary>
    Bottleneck,
}

/// <summary>The stem of a ResNet.</summary>
public enum StemKind
{
    /// <summary>torchvision's: conv 7x7 stride 2 + BN + ReLU + maxpool 3x3 stride 2.</summary>
    ImageNet,
    /// <summary>The CIFAR ResNets' (He et al. 2016, section 4.2): conv 3x3 stride 1 + BN + ReLU, no pooling.</summary>
    Cifar,
}

/// <summary>One residual block of a <see cref="ResNetSpec"/>, with its torchvision name prefix.</summary>
/// <param name="Prefix">State-dict prefix, e.g. <c>layer2.0</c>.</param>
/// <param name="Stage">Stage index 0..3.</param>
/// <param name="InChannels">Input channels.</param>
/// <param name="Width">Inner width (channels of conv1 and conv2 outputs).</param>
/// <param name="OutChannels">Output channels.</param>
/// <param name="Stride">Stride, carried by conv1 (Basic) or conv2 (Bottleneck).</param>
/// <param name="Groups">Groups of the 3x3 conv (Bottleneck only).</param>
internal sealed record BlockSpec(string Prefix, int Stage, int InChannels, int Width, int OutChannels, int Stride, int Groups)
{
    /// <summary>True where the shortcut is a strided 1x1 conv with BN (torchvision's <c>downsample</c>).</summary>
    public bool HasProjection => Stride != 1 || InChannels != OutChannels;
}

/// <summary>
/// A ResNet with torchvision's names: a stem (torchvision's conv 7x7/2 + maxpool, or the CIFAR ResNets' conv 3x3/1),
/// stages of residual blocks (strides 1, 2, 2, ...), global average pool and a linear classifier. Widths are
/// explicit per stage, so narrow, wide and CIFAR-style variants and any num_classes are described as well as the
/// named models.
/// </summary>
/// <param name="Block">Block type.</param>
/// <param name="Layers">Blocks per stage (4 entries for torchvision's layouts, 3 for the CIFAR ones).</param>
/// <param name="StemWidth">Output channels of the stem conv.</param>
/// <param name="Planes">torchvision's <c>planes</c> per stage; stage output is planes * expansion.</param>
/// <param name="Widths">Inner width per stage (equals planes for Basic blocks).</param>
/// <param name="Groups">Groups of the Bottleneck 3x3 convs.</param>
/// <param name="NumClasses">Classifier outputs.</param>
/// <param name="Name">torchvision name where the layout is a named one.</param>
public sealed record ResNetSpec(BlockKind Block, int[] Layers, int StemWidth, int[] Planes, int[] Widths, int Groups, int NumClasses, string? Name = null)
{
    /// <summary>
    /// Squeeze-and-excitation reduced channels per stage (timm's SE-ResNet names <c>layerN.M.se.fc1</c> /
    /// <c>.se.fc2</c>, 1x1 convs with bias), or null for a plain ResNet.
    /// </summary>
    public int[]? SeChannels { get; init; }

    /// <summary>Channels of the input image (3 for RGB, 1 for grayscale such as Fashion-MNIST).</summary>
    public int InputChannels { get; init; } = 3;

    /// <summary>The stem's shape.</summary>
    public StemKind Stem { get; init; } = StemKind.ImageNet;

    /// <summary>
    /// Inner width of each block, in <see cref="Blocks"/> order, where blocks of one stage differ (a channel-pruned
    /// residual network); null where every block has its stage's width. Basic blocks only.
    /// </summary>
    public int[]? BlockWidths { get; init; }

    /// <summary>Stem conv kernel size.</summary>
    public int StemKernel => Stem == StemKind.Cifar ? 3 : 7;

    /// <summary>Stem conv stride.</summary>
    public int StemStride => Stem == StemKind.Cifar ? 1 : 2;

    /// <summary>Stem conv padding (same on every side).</summary>
    public int StemPadding => StemKernel / 2;

    /// <summary>True where a 3x3 stride-2 max pool follows the stem (torchvision).</summary>
    public bool StemMaxPool => Stem == StemKind.ImageNet;

    /// <summary>Number of stages.</summary>
    public int StageCount => Layers.Length;

    /// <summary>Channel expansion of the block's last conv.</summary>
    public int Expansion => Block == BlockKind.Basic ? 1 : 4;

    /// <summary>The named torchvision layouts this library builds.</summary>
    public static IReadOnlyList<string> KnownNames { get; } = new[]
    {
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
        "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    };

    /// <summary>The torchvision layout with that name.</summary>
    /// <param name="name">A name from <see cref="KnownNames"/>.</param>
    /// <param name="numClasses">Classifier outputs.</param>
    /// <param name="inputChannels">Channels of the input image.</param>
    public static ResNetSpec Named(string name, int numClasses = 1000, int inputChannels = 3)
    {
        if (CifarDepth(name) is int depth)
        {
            // CIFAR ResNet-(6n+2): three stages of n Basic blocks, widths 16, 32, 64; projection shortcuts
            // (option B) so that the names and the RM merge are torchvision's.
            int n = (depth - 2) / 6;
            return new ResNetSpec(BlockKind.Basic, new[] { n, n, n }, 16, new[] { 16, 32, 64 }, new[] { 16, 32, 64 }, 1, numClasses, name)
            { Stem = StemKind.Cifar, InputChannels = inputChannels };
        }
        var (block, layers, groups, widthPerGroup) = name switch
        {
            "resnet18" => (BlockKind.Basic, new[] { 2, 2, 2, 2 }, 1, 64),
            "resnet34" => (BlockKind.Basic, new[] { 3, 4, 6, 3 }, 1, 64),
            "resnet50" => (BlockKind.Bottleneck, new[] { 3, 4, 6, 3 }, 1, 64),
            "resnet101" => (BlockKind.Bottleneck, new[] { 3, 4, 23, 3 }, 1, 64),
            "resnet152" => (BlockKind.Bottleneck, new[] { 3, 8, 36, 3 }, 1, 64),
            "resnext50_32x4d" => (BlockKind.Bottleneck, new[] { 3, 4, 6, 3 }, 32, 4),
            "resnext101_32x8d" => (BlockKind.Bottleneck, new[] { 3, 4, 23, 3 }, 32, 8),
            "resnext101_64x4d" => (BlockKind.Bottleneck, new[] { 3, 4, 23, 3 }, 64, 4),
            "wide_resnet50_2" => (BlockKind.Bottleneck, new[] { 3, 4, 6, 3 }, 1, 128),
            "wide_resnet101_2" => (BlockKind.Bottleneck, new[] { 3, 4, 23, 3 }, 1, 128),
            _ => throw new ArgumentException($"unknown architecture '{name}'; known: {string.Join(", ", KnownNames)}"),
        };
        return Create(block, layers, 64, groups, widthPerGroup, numClasses) with { Name = name, InputChannels = inputChannels };
    }

    static int? CifarDepth(string name) => name switch
    {
        "resnet20" => 20, "resnet32" => 32, "resnet44" => 44, "resnet56" => 56, "resnet110" => 110, _ => null,
    };

    /// <summary>A torchvision-style layout from its constructor arguments and a base width (64 in torchvision).</summary>
    public static ResNetSpec Create(BlockKind block, int[] layers, int baseWidth, int groups, int widthPerGroup, int numClasses)
    {
        var planes = Enumerable.Range(0, layers.Length).Select(s => baseWidth << s).ToArray();
        // torchvision: width = int(planes * (width_per_group / 64.)) * groups
        var widths = block == BlockKind.Basic ? planes.ToArray()
            : planes.Select(p => (int)(p * (widthPerGroup / 64.0)) * groups).ToArray();
        return new ResNetSpec(block, layers, baseWidth, planes, widths, block == BlockKind.Basic ? 1 : groups, numClasses);
    }

    /// <summary>Every residual block, in order.</summary>
    internal IEnumerable<BlockSpec> Blocks()
    {
        int inChannels = StemWidth, index = 0;
        for (int s = 0; s < StageCount; s++)
        {
            for (int i = 0; i < Layers[s]; i++, index++)
            {
                int stride = i == 0 && s > 0 ? 2 : 1;
                int outChannels = Planes[s] * Expansion;
                int width = BlockWidths?[index] ?? Widths[s];
                yield return new BlockSpec($"layer{s + 1}.{i}", s, inChannels, width, outChannels, stride, Groups);
                inChannels = outChannels;
            }
        }
    }

    /// <summary>Channels entering the classifier.</summary>
    public int FeatureChannels => Planes[^1] * Expansion;

    /// <summary>A readable name: the torchvision name, or a description of the layout.</summary>
    public string DisplayName => Name is { } n && BlockWidths is null ? n
        : $"{(SeChannels is null ? "" : "se-")}{(Block == BlockKind.Basic ? "basic" : "bottleneck")}-resnet[{string.Join(",", Layers)}]"
          + $"{(Stem == StemKind.Cifar ? " cifar" : "")} stem {StemWidth}, widths [{string.Join(",", Widths)}]{(Groups > 1 ? $", groups {Groups}" : "")}"
          + $"{(BlockWidths is null ? "" : $", pruned block widths [{string.Join(",", BlockWidths)}]")}";

    /// <summary>Depth counted as torchvision does (weighted layers).</summary>
    public int Depth => Layers.Sum() * (Block == BlockKind.Basic ? 2 : 3) + 2;

    /// <summary>Structural equality (records compare arrays by reference).</summary>
    internal bool SameLayout(ResNetSpec other) =>
        Block == other.Block && Layers.SequenceEqual(other.Layers) && StemWidth == other.StemWidth
        && Stem == other.Stem && InputChannels == other.InputChannels
        && (BlockWidths ?? Array.Empty<int>()).SequenceEqual(other.BlockWidths ?? Array.Empty<int>())
        && Planes.SequenceEqual(other.Planes) && Widths.SequenceEqual(other.Widths) && Groups == other.Groups
        && NumClasses == other.NumClasses && (SeChannels ?? Array.Empty<int>()).SequenceEqual(other.SeChannels ?? Array.Empty<int>());

    /// <summary>Every state-dict key of this layout with its shape, in torchvision's order.</summary>
    internal IEnumerable<(string Key, long[] Shape)> ExpectedParameters()
    {
        foreach (var p in ConvBn("conv1", "bn1", StemWidth, InputChannels, StemKernel)) yield return p;
        foreach (var b in Blocks())
        {
            var kernels = Block == BlockKind.Basic
                ? new[] { (b.Width, b.InChannels, 3, 1), (b.OutChannels, b.Width, 3, 1) }
                : new[] { (b.Width, b.InChannels, 1, 1), (b.Width, b.Width, 3, b.Groups), (b.OutChannels, b.Width, 1, 1) };
            for (int c = 0; c < kernels.Length; c++)
            {
                var (o, i, k, g) = kernels[c];
                foreach (var p in ConvBn($"{b.Prefix}.conv{c + 1}", $"{b.Prefix}.bn{c + 1}", o, i / g, k)) yield return p;
            }
            if (SeChannels is { } se)
            {
                yield return ($"{b.Prefix}.se.fc1.weight", new long[] { se[b.Stage], b.OutChannels, 1, 1 });
                yield return ($"{b.Prefix}.se.fc1.bias", new long[] { se[b.Stage] });
                yield return ($"{b.Prefix}.se.fc2.weight", new long[] { b.OutChannels, se[b.Stage], 1, 1 });
                yield return ($"{b.Prefix}.se.fc2.bias", new long[] { b.OutChannels });
            }
            if (b.HasProjection)
                foreach (var p in ConvBn($"{b.Prefix}.downsample.0", $"{b.Prefix}.downsample.1", b.OutChannels, b.InChannels, 1))
                    yield return p;
        }
        yield return ("fc.weight", new long[] { NumClasses, FeatureChannels });
        yield return ("fc.bias", new long[] { NumClasses });
    }

    static IEnumerable<(string, long[])> ConvBn(string conv, string bn, long outC, long inPerGroup, long k)
    {
        yield return ($"{conv}.weight", new[] { outC, inPerGroup, k, k });
        foreach (var name in new[] { "weight", "bias", "running_mean", "running_var" })
            yield return ($"{bn}.{name}", new[] { outC });
    }
}
