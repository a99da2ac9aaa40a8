using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// timm's RepVGG (byobnet): blocks <c>stem</c> and <c>stages.i.j</c>, each the sum of <c>conv_1x1</c> and
/// <c>conv_kxk</c> (<c>.conv</c> + BN <c>.bn</c>) and, where the block keeps its width and size, the BN
/// <c>identity</c>; then ReLU. A block in deploy form is the single conv <c>reparam_conv</c> (with bias). Head
/// <c>head.fc</c> on the global average. Strides are not in a state dict: RepVGG's are assumed (the stem and every
/// stage's first block halve the size), and a stage's other blocks are checked to keep the width
/// (<see cref="TimmReparamBlock"/>).
/// </summary>
internal static class TimmRepVgg
{
    /// <summary>True for the names of timm's RepVGG.</summary>
    public static bool Matches(StateDict sd) =>
        (sd.ContainsKey("stem.conv_kxk.conv.weight") || sd.ContainsKey("stem.reparam_conv.weight")) && sd.ContainsKey("head.fc.weight")
        && (sd.ContainsKey("stages.0.0.conv_kxk.conv.weight") || sd.ContainsKey("stages.0.0.reparam_conv.weight"));

    /// <summary>E.g. "timm RepVGG, stages of 2-4-14-1 blocks, 1000 classes".</summary>
    public static string Describe(StateDict sd) =>
        $"timm RepVGG{(sd.ContainsKey("stem.reparam_conv.weight") ? " (deploy form)" : "")}, stages of {string.Join("-", TimmReparamBlock.Depths(sd, "conv_kxk"))} blocks, {sd.Require("head.fc.weight").shape[0]} classes";

    /// <summary>The network as a graph, with <paramref name="eps"/> the BatchNorms' epsilon (timm's 1e-5).</summary>
    public static ModelProto Lower(StateDict sd, double eps = 1e-5) => TimmReparamBlock.Lower(sd, eps, _ => Branches, "conv_kxk", Describe(sd));

    static readonly string[] Branches = { "conv_1x1", "conv_kxk" };

    /// <summary>Stages <c>stages.i</c>; the stem is a block too.</summary>
    public static LoweredLayout Layout(StateDict sd) => LoweredLayout.Of(TimmReparamBlock.Depths(sd, "conv_kxk"), i => $"stages.{i}", extraBlocks: 1);
}
