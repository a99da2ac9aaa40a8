using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// torchvision's RegNetX and RegNetY (<c>regnet_x_400mf</c> ... <c>regnet_y_128gf</c>): stem <c>stem.0</c> (3x3 conv,
/// stride 2) + BN <c>stem.1</c> + ReLU; stages <c>trunk_output.blockN</c> of blocks <c>blockN-M</c>, each a bottleneck
/// <c>f.a</c> (1x1), <c>f.b</c> (3x3 grouped, the stage's stride 2 in its first block), on RegNetY an SE module
/// <c>f.se.fc1/fc2</c> between them, <c>f.c</c> (1x1, no activation); <c>proj</c> (1x1 conv + BN) where the width or
/// size changes; ReLU after the sum; global average pool and <c>fc</c>.
/// </summary>
internal static class TorchvisionRegNet
{
    /// <summary>True for torchvision's RegNet names.</summary>
    public static bool Matches(StateDict sd) =>
        sd.ContainsKey("stem.0.weight") && sd.ContainsKey(Block(1, 0) + ".f.a.0.weight") && sd.ContainsKey("fc.weight");

    /// <summary>E.g. "torchvision RegNetY (SE inside the branch), stages of 1-3-6-6 blocks, 1000 classes".</summary>
    public static string Describe(StateDict sd) =>
        $"torchvision {(SqueezeExcite(sd) ? "RegNetY (SE inside the branch)" : "RegNetX")}, stages of {string.Join("-", Depths(sd))} blocks, {sd.Require("fc.weight").shape[0]} classes";

    /// <summary>The network as a graph, with <paramref name="eps"/> the BatchNorms' epsilon (torchvision's 1e-5).</summary>
    public static ModelProto Lower(StateDict sd, double eps = 1e-5)
    {
        var g = new GraphBuilder(sd);
        string x = g.Relu(g.ConvBn(g.Input, "stem.0", "stem.1", stride: 2, eps: eps), "stem.2");
        var depths = Depths(sd);
        for (int stage = 1; stage <= depths.Count; stage++)
            for (int block = 0; block < depths[stage - 1]; block++)
            {
                string p = Block(stage, block);
                int stride = block == 0 ? 2 : 1;
                long width = sd.Require($"{p}.f.b.0.weight").shape[0];
                int groups = checked((int)(width / sd.Require($"{p}.f.b.0.weight").shape[1]));
                var y = g.Relu(g.ConvBn(x, $"{p}.f.a.0", $"{p}.f.a.1", 1, eps: eps), $"{p}.f.a.2");
                y = g.Relu(g.ConvBn(y, $"{p}.f.b.0", $"{p}.f.b.1", stride, groups, eps), $"{p}.f.b.2");
                if (sd.ContainsKey($"{p}.f.se.fc1.weight")) y = g.SqueezeExcite(y, $"{p}.f.se");
                y = g.ConvBn(y, $"{p}.f.c.0", $"{p}.f.c.1", 1, eps: eps);
                string shortcut = sd.ContainsKey($"{p}.proj.0.weight") ? g.ConvBn(x, $"{p}.proj.0", $"{p}.proj.1", stride, eps: eps) : x;
                x = g.Relu(g.Sum(shortcut, y, $"{p}.add"), $"{p}.activation");
            }
        g.Classifier(x, "fc");
        return g.Build(sd.Require("stem.0.weight").shape[1], sd.Require("fc.weight").shape[0], $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {Describe(sd)}");
    }

    static string Block(int stage, int block) => $"trunk_output.block{stage}.block{stage}-{block}";

    /// <summary>Stages <c>trunk_output.blockN</c> and their blocks.</summary>
    public static LoweredLayout Layout(StateDict sd) => LoweredLayout.Of(Depths(sd), i => $"trunk_output.block{i + 1}");

    static bool SqueezeExcite(StateDict sd) => sd.ContainsKey(Block(1, 0) + ".f.se.fc1.weight");

    static List<int> Depths(StateDict sd) => StageDepths.Count((stage, block) => sd.ContainsKey(Block(stage, block) + ".f.a.0.weight"), first: 1);
}
