using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// ACNet's own repository's ImageNet ResNet (<c>base_model/resnet.py</c>: <c>create_ResNet18</c>, ResNet34) built with
/// its <c>ACNetBuilder</c>, which keeps 1x1 kernels and kernels of 7 and above the base builder's ConvBN
/// (<c>.conv</c> + <c>.bn</c>, kept so in deploy form) and makes the 3x3 convs <see cref="AcBlock"/>s. Stem
/// <c>conv1</c> (7x7 ConvBN, stride 2, then ReLU) and a 3x3 max pool (stride 2); stages <c>stage1</c> .. <c>stage4</c>
/// (stride 1, then 2 in each later stage's first block) of BasicBlocks (<see cref="AcnetBasicBlock"/>; the shortcut a
/// 1x1 ConvBN where the stride or the width changes); <c>gap</c> (a 7x7 average pool and flatten) and <c>linear</c>.
/// </summary>
/// <remarks>
/// <c>gap</c> pools a 7x7 window of stride 7: on a 7x7 last map (ImageNet's 224x224, down to 193) that is the whole map,
/// the lowering's global average pool. On an 8x8 to 13x13 map (inputs of about 225 to 447) PyTorch still runs but
/// averages the top-left 7x7 window only, another function: the graph fixes its input at 224 so that no other size
/// verifies as equal.
/// </remarks>
internal static class AcnetResNet
{
    /// <summary>The input size the graph fixes (see the remarks).</summary>
    public const int InputSize = 224;

    /// <summary>True for the names of ACNet's ImageNet ResNet built of ACBlocks, in either form.</summary>
    public static bool Matches(StateDict sd) =>
        sd.ContainsKey("conv1.conv.weight") && AcBlock.Kind.IsAt(sd, "stage1.0.conv1.acb") && AcBlock.Kind.IsAt(sd, "stage1.0.conv2")
        && sd.ContainsKey("linear.weight");

    /// <summary>E.g. "ACNet (ACBlock) ResNet (the ACNet repository's), Basic blocks 2-2-2-2 (ResNet-18), 1000 classes".</summary>
    public static string Describe(StateDict sd)
    {
        var depths = AcnetBasicBlock.Depths(sd);
        // create_ResNet18 and create_ResNet34: resnet.py builds no other depths.
        string named = depths.SequenceEqual(new[] { 2, 2, 2, 2 }) ? " (ResNet-18)" : depths.SequenceEqual(new[] { 3, 4, 6, 3 }) ? " (ResNet-34)" : "";
        return $"{AcBlock.Kind.Family} ResNet (the ACNet repository's){(AcBlock.Kind.Deployed(sd, "stage1.0.conv1.acb") ? " (deploy form)" : "")}, " +
            $"Basic blocks {string.Join("-", depths)}{named}, {sd.Require("linear.weight").shape[0]} classes";
    }

    /// <summary>The network as a graph, with <paramref name="eps"/> the BatchNorms' epsilon (PyTorch's 1e-5).</summary>
    public static ModelProto Lower(StateDict sd, double eps = 1e-5)
    {
        var g = new GraphBuilder(sd);
        long inputChannels = sd.Require("conv1.conv.weight").shape[1];
        string x = g.Relu(g.ConvBnModule(g.Input, "conv1", 2, eps), "conv1.relu");
        x = g.MaxPool(x, "maxpool", 3, 2, 1);
        AcnetBasicBlock.StagesAndHead(g, sd, x, eps);
        return g.Build(inputChannels, sd.Require("linear.weight").shape[0], $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {Describe(sd)}", InputSize);
    }

    /// <summary>Stages <c>stage1</c> .. and their blocks.</summary>
    public static LoweredLayout Layout(StateDict sd) => AcnetBasicBlock.Layout(sd);
}
