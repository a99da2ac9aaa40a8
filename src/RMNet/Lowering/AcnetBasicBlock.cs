namespace RMNet.Lowering;

/// <summary>
/// The residual block of ACNet's own repository's ResNets, built with its <c>ACNetBuilder</c>: RCNet's RCBlock and
/// <c>resnet.py</c>'s BasicBlock, which name it alike. <c>conv1</c> (Conv2dBNReLU: the 3x3 <see cref="AcBlock"/> as
/// <c>conv1.acb</c>, with the block's stride, then ReLU), <c>conv2</c> (Conv2dBN: the 3x3 ACBlock itself), plus
/// <c>shortcut</c> (the base builder's 1x1 ConvBN, <c>.conv</c> + <c>.bn</c>, kept so in deploy form; or the identity)
/// and a ReLU.
/// </summary>
internal static class AcnetBasicBlock
{
    /// <summary>
    /// Block <paramref name="p"/> on <paramref name="x"/>; returns its output. A projection is read where the stride is
    /// not 1 (RCNet's rule), where the width changes (resnet.py's) or where the checkpoint has one, so that a checkpoint
    /// without the projection its sum needs is refused naming the tensor.
    /// </summary>
    public static string Lower(GraphBuilder g, StateDict sd, string p, string x, int stride, double eps)
    {
        var kind = AcBlock.Kind;
        long inChannels = kind.MainKernel(sd, $"{p}.conv1.acb").shape[1];
        string y = g.Relu(kind.LowerBlock(g, sd, $"{p}.conv1.acb", x, stride, 1, eps), $"{p}.conv1.relu");
        y = kind.LowerBlock(g, sd, $"{p}.conv2", y, 1, 1, eps);
        bool projection = stride != 1 || inChannels != kind.MainKernel(sd, $"{p}.conv2").shape[0]
            || sd.Keys.Any(k => k.StartsWith($"{p}.shortcut.", StringComparison.Ordinal));
        string shortcut = projection ? g.ConvBnModule(x, $"{p}.shortcut", stride, eps) : x;
        return g.Relu(g.Sum(y, shortcut, $"{p}.add"), $"{p}.relu");
    }


    /// <summary>
    /// The stages <c>stage1</c> .. of these blocks after <paramref name="x"/>, then the global pool and <c>linear</c>:
    /// both ACNet networks halve the size in the first block of every stage after <c>stage1</c> (strides are not in a
    /// state dict).
    /// </summary>
    public static void StagesAndHead(GraphBuilder g, StateDict sd, string x, double eps)
    {
        var depths = Depths(sd);
        for (int s = 0; s < depths.Count; s++)
            for (int b = 0; b < depths[s]; b++)
                x = Lower(g, sd, $"stage{s + 1}.{b}", x, s > 0 && b == 0 ? 2 : 1, eps);
        g.Classifier(x, "linear");
    }

    /// <summary>Stages <c>stage1</c> .. and their blocks (the stem is no stage).</summary>
    public static LoweredLayout Layout(StateDict sd) => LoweredLayout.Of(Depths(sd), i => $"stage{i + 1}");

    /// <summary>Blocks per stage, from the names <c>stageN.M.</c>.</summary>
    public static List<int> Depths(StateDict sd) =>
        StageDepths.Count((s, b) => sd.Keys.Any(k => k.StartsWith($"stage{s}.{b}.", StringComparison.Ordinal)), first: 1);
}
