using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// timm's RepVGG (byobnet): blocks <c>stem</c> and <c>stages.i.j</c>, each the sum of <c>conv_1x1</c> and
/// <c>conv_kxk</c> (<c>.conv</c> + BN <c>.bn</c>) and, where the block keeps its width and size, the BN
/// <c>identity</c>; then ReLU. A block in deploy form is the single conv <c>reparam_conv</c> (with bias). Head
/// <c>head.fc</c> on the global average. Strides are not in a state dict: RepVGG's are assumed (the stem and every
/// stage's first block halve the size), and a stage's other blocks are checked to keep the width.
/// </summary>
internal static class TimmRepVgg
{
    /// <summary>True for the names of timm's RepVGG.</summary>
    public static bool Matches(StateDict sd) =>
        (sd.ContainsKey("stem.conv_kxk.conv.weight") || sd.ContainsKey("stem.reparam_conv.weight")) && sd.ContainsKey("head.fc.weight")
        && (sd.ContainsKey("stages.0.0.conv_kxk.conv.weight") || sd.ContainsKey("stages.0.0.reparam_conv.weight"));

    /// <summary>E.g. "timm RepVGG, stages of 2-4-14-1 blocks, 1000 classes".</summary>
    public static string Describe(StateDict sd) =>
        $"timm RepVGG{(sd.ContainsKey("stem.reparam_conv.weight") ? " (deploy form)" : "")}, stages of {string.Join("-", Depths(sd))} blocks, {sd.Require("head.fc.weight").shape[0]} classes";

    /// <summary>The network as a graph, with <paramref name="eps"/> the BatchNorms' epsilon (timm's 1e-5).</summary>
    public static ModelProto Lower(StateDict sd, double eps = 1e-5)
    {
        var g = new GraphBuilder(sd);
        long channels = sd.Require(KxK(sd, "stem")).shape[1];   // the stem's convs are not grouped
        long inputChannels = channels;
        string x = Block(g, sd, "stem", g.Input, 2, eps, ref channels);
        var depths = Depths(sd);
        for (int stage = 0; stage < depths.Count; stage++)
            for (int block = 0; block < depths[stage]; block++)
                x = Block(g, sd, $"stages.{stage}.{block}", x, block == 0 ? 2 : 1, eps, ref channels);
        g.Classifier(x, "head.fc");
        return g.Build(inputChannels, sd.Require("head.fc.weight").shape[0], $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {Describe(sd)}");
    }

    /// <summary>
    /// conv_1x1 + conv_kxk (+ identity BN), or the deploy form's one conv; then ReLU. <paramref name="channels"/> is the
    /// block's input width (the convs' groups follow from it), updated to its output width.
    /// </summary>
    static string Block(GraphBuilder g, StateDict sd, string p, string x, int stride, double eps, ref long channels)
    {
        var kxk = sd.Require(KxK(sd, p));
        int groups = checked((int)(channels / kxk.shape[1]));
        channels = kxk.shape[0];
        if (sd.ContainsKey($"{p}.reparam_conv.weight"))
        {
            var conv = new Weights.ConvWeights(g.Read($"{p}.reparam_conv.weight"), sd.ContainsKey($"{p}.reparam_conv.bias") ? g.Read($"{p}.reparam_conv.bias") : null);
            return g.Relu(g.Conv(x, $"{p}.reparam_conv", conv, stride, groups), $"{p}.act");
        }
        var y = g.Sum(g.ConvBn(x, $"{p}.conv_1x1.conv", $"{p}.conv_1x1.bn", stride, groups, eps), g.ConvBn(x, $"{p}.conv_kxk.conv", $"{p}.conv_kxk.bn", stride, groups, eps), $"{p}.add");
        if (sd.ContainsKey($"{p}.identity.running_var"))
        {
            if (stride != 1) throw new ModelInputException(sd.Source, $"'{p}.identity' in the first block of a stage: RepVGG's strides do not fit this checkpoint");
            y = g.Sum(y, g.BatchNorm(x, $"{p}.identity", eps), $"{p}.add_identity");
        }
        return g.Relu(y, $"{p}.act");
    }

    /// <summary>The block's kxk kernel: <c>conv_kxk.conv</c>, or <c>reparam_conv</c> in deploy form.</summary>
    static string KxK(StateDict sd, string p) => sd.ContainsKey($"{p}.reparam_conv.weight") ? $"{p}.reparam_conv.weight" : $"{p}.conv_kxk.conv.weight";

    /// <summary>Stages <c>stages.i</c>; the stem is a block too.</summary>
    public static LoweredLayout Layout(StateDict sd) => LoweredLayout.Of(Depths(sd), i => $"stages.{i}", extraBlocks: 1);

    static List<int> Depths(StateDict sd) =>
        StageDepths.Count((stage, block) => sd.ContainsKey($"stages.{stage}.{block}.conv_kxk.conv.weight") || sd.ContainsKey($"stages.{stage}.{block}.reparam_conv.weight"));
}
