using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// The DBB repository's MobileNet (MobileV1) with its <c>conv_bn_relu</c> switched to a reparameterisable block
/// (<see cref="AcBlock"/> or <see cref="DiverseBranchBlock"/>): <c>conv1</c> (3x3, stride 2), blocks <c>stem.i</c>
/// each a depthwise 3x3 <c>stem.i.depthwise</c> (one group per channel; stride 2 in blocks 1, 3, 5 and 11) and a
/// pointwise <c>stem.i.pointwise</c> (<c>conv_bn_relu</c> keeps a 1x1 conv a plain ConvBN: <c>.conv</c> + <c>.bn</c>,
/// or in deploy form <c>.conv</c> with bias), ReLU after each; global average pool and <c>linear</c>.
/// </summary>
internal static class DbbMobileNet
{
    static readonly ReparamBlockKind[] Kinds = { AcBlock.Kind, DiverseBranchBlock.Kind };

    // MobileV1 halves the size in these blocks (and in conv1); strides are not in a state dict.
    static readonly int[] StridedBlocks = { 1, 3, 5, 11 };

    /// <summary>True for the names of the DBB repository's MobileNet built of a block rmnet knows.</summary>
    public static bool Matches(StateDict sd) =>
        KindOf(sd) is not null && sd.ContainsKey("linear.weight") && sd.ContainsKey("stem.0.pointwise.conv.weight");

    /// <summary>E.g. "DBB (DiverseBranchBlock) MobileNet (the DBB repository's MobileV1), 13 blocks, 1000 classes".</summary>
    public static string Describe(StateDict sd)
    {
        var kind = KindOf(sd)!;
        return $"{kind.Family} MobileNet (the DBB repository's MobileV1){(kind.Deployed(sd, "conv1") ? " (deploy form)" : "")}, {Blocks(sd)} blocks, " +
            $"{sd.Require("linear.weight").shape[0]} classes";
    }

    /// <summary>The network as a graph, with <paramref name="eps"/> the BatchNorms' epsilon (PyTorch's 1e-5).</summary>
    public static ModelProto Lower(StateDict sd, double eps = 1e-5)
    {
        var kind = KindOf(sd)!;
        var g = new GraphBuilder(sd);
        long inputChannels = kind.MainKernel(sd, "conv1").shape[1];
        string x = g.Relu(kind.LowerBlock(g, sd, "conv1", g.Input, 2, 1, eps), "conv1.nonlinear");
        for (int i = 0; i < Blocks(sd); i++)
        {
            string p = $"stem.{i}";
            var depthwise = kind.MainKernel(sd, $"{p}.depthwise");
            if (depthwise.dim() != 4 || depthwise.shape[1] != 1)
                throw new ModelInputException(sd.Source, $"'{p}.depthwise' has a kernel of shape [{string.Join(", ", depthwise.shape)}]: MobileV1's depthwise convs have one input channel per group");
            x = g.Relu(kind.LowerBlock(g, sd, $"{p}.depthwise", x, StridedBlocks.Contains(i) ? 2 : 1, checked((int)depthwise.shape[0]), eps), $"{p}.depthwise.nonlinear");
            string pointwise = sd.ContainsKey($"{p}.pointwise.bn.running_var")
                ? g.ConvBn(x, $"{p}.pointwise.conv", $"{p}.pointwise.bn", 1, eps: eps)
                : g.Conv(x, $"{p}.pointwise.conv", g.ReadConv($"{p}.pointwise.conv"), 1);
            x = g.Relu(pointwise, $"{p}.pointwise.nonlinear");
        }
        g.Classifier(x, "linear");
        return g.Build(inputChannels, sd.Require("linear.weight").shape[0], $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {Describe(sd)}");
    }

    /// <summary>MobileV1 has no stage modules: each block <c>stem.i</c> is a row of its own (conv1 is the stem).</summary>
    public static LoweredLayout Layout(StateDict sd) => LoweredLayout.Of(Enumerable.Repeat(1, Blocks(sd)).ToList(), i => $"stem.{i}");

    static ReparamBlockKind? KindOf(StateDict sd) => Kinds.FirstOrDefault(k => k.IsAt(sd, "conv1") && k.IsAt(sd, "stem.0.depthwise"));

    static int Blocks(StateDict sd)
    {
        int n = 0;
        while (sd.ContainsKey($"stem.{n}.pointwise.conv.weight")) n++;
        return n;
    }
}
