using System.Text.RegularExpressions;
using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// timm's ResNet-D family (<c>resnet26d</c>, <c>resnet50d</c>, <c>resnet101d</c>, ...): torchvision's names for the
/// blocks, plus what torchvision lacks. A deep stem: <c>conv1.0</c>, BN <c>conv1.1</c>, ReLU, <c>conv1.3</c>, BN
/// <c>conv1.4</c>, ReLU, <c>conv1.6</c>, then <c>bn1</c>. Projection shortcuts that average-pool first:
/// <c>downsample.0</c> is <c>AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)</c> (an identity at
/// stride 1), <c>downsample.1</c> the 1x1 conv and <c>downsample.2</c> its BN. Basic blocks take the stride in
/// <c>conv1</c>, bottlenecks in <c>conv2</c>, whose groups the weight shapes give (ResNeXt-D). Stages 2 to 4 halve the size.
/// ResNet-RS's strided conv in place of the stem's max pool (<c>maxpool.0</c> + BN <c>maxpool.1</c>) is taken too.
/// timm's SE module (<c>se.fc1</c>, <c>se.fc2</c>: SE-ResNeXt-D, ResNet-RS) or ECA module (<c>se.conv</c>: ECA-ResNet-D) gates the
/// branch before the sum.
/// </summary>
internal static class TimmResNet
{
    static readonly Regex AvgShortcut = new(@"^layer\d+\.\d+\.downsample\.2\.running_var$", RegexOptions.CultureInvariant);

    /// <summary>True for a timm ResNet with a deep stem or average-pooled shortcuts (a plain timm ResNet has torchvision's names and loads as one).</summary>
    public static bool Matches(StateDict sd) =>
        sd.ContainsKey("layer1.0.conv1.weight") && sd.ContainsKey("fc.weight")
        && (sd.ContainsKey("conv1.0.weight") || sd.Keys.Any(AvgShortcut.IsMatch));

    /// <summary>E.g. "timm ResNet-D (deep stem, average-pooled shortcuts), Bottleneck blocks 3-4-6-3, 1000 classes".</summary>
    public static string Describe(StateDict sd)
    {
        var parts = new List<string>();
        if (sd.ContainsKey("conv1.0.weight")) parts.Add("deep stem");
        if (sd.ContainsKey("maxpool.0.weight")) parts.Add("conv stem pool");
        if (sd.Keys.Any(AvgShortcut.IsMatch)) parts.Add("average-pooled shortcuts");
        if (sd.ContainsKey("layer1.0.se.fc1.weight")) parts.Add("SE");
        if (sd.ContainsKey("layer1.0.se.conv.weight")) parts.Add("ECA");
        return $"timm ResNet-D ({string.Join(", ", parts)}), {(Bottleneck(sd) ? "Bottleneck" : "Basic")} blocks {string.Join("-", Depths(sd))}, {sd.Require("fc.weight").shape[0]} classes";
    }

    /// <summary>The network as a graph, with <paramref name="eps"/> the BatchNorms' epsilon (timm's default 1e-5).</summary>
    public static ModelProto Lower(StateDict sd, double eps = 1e-5)
    {
        var g = new GraphBuilder(sd);
        string x = g.Input;
        if (sd.ContainsKey("conv1.0.weight"))
        {
            x = g.Relu(g.ConvBn(x, "conv1.0", "conv1.1", stride: 2, eps: eps), "conv1.2");
            x = g.Relu(g.ConvBn(x, "conv1.3", "conv1.4", stride: 1, eps: eps), "conv1.5");
            x = g.ConvBn(x, "conv1.6", "bn1", stride: 1, eps: eps);
        }
        else
        {
            x = g.ConvBn(x, "conv1", "bn1", stride: 2, eps: eps);
        }
        x = g.Relu(x, "act1");
        // ResNet-RS replaces the stem's max pool with a strided conv + BN + ReLU (timm's replace_stem_pool).
        x = sd.ContainsKey("maxpool.0.weight")
            ? g.Relu(g.ConvBn(x, "maxpool.0", "maxpool.1", stride: 2, eps: eps), "maxpool.2")
            : g.MaxPool(x, "maxpool", 3, 2, 1);
        bool bottleneck = Bottleneck(sd);
        var depths = Depths(sd);
        for (int stage = 0; stage < depths.Count; stage++)
            for (int block = 0; block < depths[stage]; block++)
            {
                string p = $"layer{stage + 1}.{block}";
                int stride = stage > 0 && block == 0 ? 2 : 1;
                x = bottleneck ? Bottleneck(g, sd, p, x, stride, eps) : Basic(g, sd, p, x, stride, eps);
            }
        g.Classifier(x, "fc");
        long inputChannels = sd.Require(sd.ContainsKey("conv1.0.weight") ? "conv1.0.weight" : "conv1.weight").shape[1];
        return g.Build(inputChannels, sd.Require("fc.weight").shape[0], $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {Describe(sd)}");
    }

    /// <summary>A Basic block <paramref name="p"/> on <paramref name="x"/> (torchvision's names; timm's SE or ECA where present).</summary>
    internal static string Basic(GraphBuilder g, StateDict sd, string p, string x, int stride, double eps)
    {
        var y = g.Relu(g.ConvBn(x, $"{p}.conv1", $"{p}.bn1", stride, eps: eps), $"{p}.act1");
        y = SqueezeExcite(g, sd, p, g.ConvBn(y, $"{p}.conv2", $"{p}.bn2", 1, eps: eps));
        return g.Relu(g.Sum(y, Shortcut(g, sd, p, x, stride, eps), $"{p}.add"), $"{p}.act2");
    }

    /// <summary>A Bottleneck block <paramref name="p"/> on <paramref name="x"/>, its groups from the weight shapes.</summary>
    internal static string Bottleneck(GraphBuilder g, StateDict sd, string p, string x, int stride, double eps)
    {
        long width = sd.Require($"{p}.conv1.weight").shape[0];
        int groups = checked((int)(width / sd.Require($"{p}.conv2.weight").shape[1]));
        var y = g.Relu(g.ConvBn(x, $"{p}.conv1", $"{p}.bn1", 1, eps: eps), $"{p}.act1");
        y = g.Relu(g.ConvBn(y, $"{p}.conv2", $"{p}.bn2", stride, groups, eps), $"{p}.act2");
        y = SqueezeExcite(g, sd, p, g.ConvBn(y, $"{p}.conv3", $"{p}.bn3", 1, eps: eps));
        return g.Relu(g.Sum(y, Shortcut(g, sd, p, x, stride, eps), $"{p}.add"), $"{p}.act3");
    }

    /// <summary>The identity, a strided 1x1 projection (<c>downsample.0/.1</c>), or ResNet-D's average pool then 1x1 (<c>downsample.1/.2</c>).</summary>
    static string Shortcut(GraphBuilder g, StateDict sd, string p, string x, int stride, double eps)
    {
        if (sd.ContainsKey($"{p}.downsample.2.running_var"))
        {
            string pooled = stride == 1 ? x : g.AveragePool(x, $"{p}.downsample.0", 2, stride, ceilMode: true, countIncludePad: false);
            return g.ConvBn(pooled, $"{p}.downsample.1", $"{p}.downsample.2", 1, eps: eps);
        }
        if (sd.ContainsKey($"{p}.downsample.0.weight"))
            return g.ConvBn(x, $"{p}.downsample.0", $"{p}.downsample.1", stride, eps: eps);
        return x;
    }

    /// <summary>timm's SE module (<c>se.fc1/fc2</c>) or ECA module (<c>se.conv</c>) on the branch, before the sum, where the block has one.</summary>
    static string SqueezeExcite(GraphBuilder g, StateDict sd, string p, string y) =>
        sd.ContainsKey($"{p}.se.fc1.weight") ? g.SqueezeExcite(y, $"{p}.se")
        : sd.ContainsKey($"{p}.se.conv.weight") ? g.EfficientChannelAttention(y, $"{p}.se")
        : y;

    static bool Bottleneck(StateDict sd) => sd.ContainsKey("layer1.0.conv3.weight");

    /// <summary>Stages <c>layer1</c> ... and their blocks.</summary>
    public static LoweredLayout Layout(StateDict sd) => LoweredLayout.Of(Depths(sd), i => $"layer{i + 1}");

    /// <summary>Blocks per stage, layer1 to the last layer present.</summary>
    static List<int> Depths(StateDict sd) => StageDepths.Count((stage, block) => sd.ContainsKey($"layer{stage}.{block}.conv1.weight"), first: 1);
}
