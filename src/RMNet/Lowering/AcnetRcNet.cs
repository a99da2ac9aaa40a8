using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// ACNet's own repository's CIFAR ResNet, RCNet (<c>create_RC56</c>, RC110, RC164; RH for 100 classes) built with its
/// <c>ACNetBuilder</c>, which makes every 3x3 conv an <see cref="AcBlock"/> and leaves 1x1 convs the base builder's
/// ConvBN (<c>.conv</c> + <c>.bn</c>, kept so in deploy form). Stem <c>conv1</c> (Conv2dBNReLU: the block as
/// <c>conv1.acb</c>, then ReLU); stages <c>stage1</c> .. <c>stage3</c> (stride 1, then 2 in each later stage's first
/// block) of RCBlocks (<see cref="AcnetBasicBlock"/>; the shortcut a 1x1 ConvBN where the stride is not 1); an 8x8
/// average pool, flatten and <c>linear</c>.
/// </summary>
/// <remarks>
/// RCNet pools an 8x8 window of stride 8: on an 8x8 last map (CIFAR's 32x32) that is the whole map, the lowering's
/// global average pool. On a 9x9 to 15x15 map (inputs of about 33 to 60) PyTorch still runs but averages the top-left
/// 8x8 window only, another function: the graph fixes its input at 32 so that no other size verifies as equal.
/// </remarks>
internal static class AcnetRcNet
{
    /// <summary>The input size the graph fixes (see the remarks).</summary>
    public const int InputSize = 32;

    /// <summary>True for the names of ACNet's RCNet built of ACBlocks, in either form.</summary>
    public static bool Matches(StateDict sd) =>
        AcBlock.Kind.IsAt(sd, "conv1.acb") && AcBlock.Kind.IsAt(sd, "stage1.0.conv1.acb") && AcBlock.Kind.IsAt(sd, "stage1.0.conv2")
        && sd.ContainsKey("linear.weight");

    /// <summary>E.g. "ACNet (ACBlock) RCNet (the ACNet repository's CIFAR ResNet), RCBlocks 9-9-9 (RC56), 10 classes".</summary>
    public static string Describe(StateDict sd)
    {
        var depths = AcnetBasicBlock.Depths(sd);
        long classes = sd.Require("linear.weight").shape[0];
        // create_RC56/110/164 (10 classes) and create_RH56/110/164 (100): n blocks a stage (6n + 2 layers), widths 16/32/64.
        bool standard = depths.Count == 3 && depths.Distinct().Count() == 1 && classes is 10 or 100
            && AcBlock.Kind.MainKernel(sd, "conv1.acb").shape[0] == 16 && sd.Require("linear.weight").shape[1] == 64;
        string named = standard
            ? $" ({(classes == 10 ? "RC" : "RH")}{6 * depths[0] + 2})" : "";
        return $"{AcBlock.Kind.Family} RCNet (the ACNet repository's CIFAR ResNet){(AcBlock.Kind.Deployed(sd, "conv1.acb") ? " (deploy form)" : "")}, " +
            $"RCBlocks {string.Join("-", depths)}{named}, {classes} classes";
    }

    /// <summary>The network as a graph, with <paramref name="eps"/> the BatchNorms' epsilon (PyTorch's 1e-5).</summary>
    public static ModelProto Lower(StateDict sd, double eps = 1e-5)
    {
        var kind = AcBlock.Kind;
        var g = new GraphBuilder(sd);
        long inputChannels = kind.MainKernel(sd, "conv1.acb").shape[1];
        string x = g.Relu(kind.LowerBlock(g, sd, "conv1.acb", g.Input, 1, 1, eps), "conv1.relu");
        AcnetBasicBlock.StagesAndHead(g, sd, x, eps);
        return g.Build(inputChannels, sd.Require("linear.weight").shape[0], $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {Describe(sd)}", InputSize);
    }

    /// <summary>Stages <c>stage1</c> .. and their blocks.</summary>
    public static LoweredLayout Layout(StateDict sd) => AcnetBasicBlock.Layout(sd);
}
