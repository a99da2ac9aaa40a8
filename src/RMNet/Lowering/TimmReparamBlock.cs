using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// timm byobnet's reparameterisable networks (RepVGG, MobileOne) in the graph. Blocks <c>stem</c> and
/// <c>stages.i.j</c>; each in train form the sum of its conv + BN branches (each <c>.conv</c> and <c>.bn</c>) and,
/// where the block keeps its width and size, the BN <c>identity</c>; in deploy form the one conv <c>reparam_conv</c>
/// (with bias); then ReLU. Head <c>head.fc</c> on the global average. Strides are not in a state dict: both
/// families halve the size in the stem and in every stage's first block. The branch-merge pass makes each sum one conv.
/// </summary>
internal static class TimmReparamBlock
{
    /// <summary>True where block <paramref name="p"/> is in deploy form.</summary>
    public static bool Deployed(StateDict sd, string p) => sd.ContainsKey($"{p}.reparam_conv.weight");

    /// <summary>
    /// The network as a graph. <paramref name="branches"/> gives a train-form block's branches named relative to it, in
    /// the order its forward adds them; <paramref name="firstBranch"/> the branch whose conv marks that a block exists.
    /// </summary>
    public static ModelProto Lower(StateDict sd, double eps, Func<string, IReadOnlyList<string>> branches, string firstBranch, string description)
    {
        var g = new GraphBuilder(sd);
        long channels = sd.Require(Deployed(sd, "stem") ? "stem.reparam_conv.weight" : $"stem.{branches("stem")[0]}.conv.weight").shape[1];   // the stem's convs are not grouped
        long inputChannels = channels;
        string x = Block(g, sd, "stem", g.Input, 2, eps, branches("stem"), ref channels);
        var depths = Depths(sd, firstBranch);
        for (int stage = 0; stage < depths.Count; stage++)
            for (int block = 0; block < depths[stage]; block++)
            {
                string p = $"stages.{stage}.{block}";
                x = Block(g, sd, p, x, block == 0 ? 2 : 1, eps, branches(p), ref channels);
            }
        g.Classifier(x, "head.fc");
        return g.Build(inputChannels, sd.Require("head.fc.weight").shape[0], $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {description}");
    }

    /// <summary>Blocks per stage: those with <paramref name="firstBranch"/>'s conv or a <c>reparam_conv</c>.</summary>
    public static List<int> Depths(StateDict sd, string firstBranch) =>
        StageDepths.Count((stage, block) => sd.ContainsKey($"stages.{stage}.{block}.{firstBranch}.conv.weight") || Deployed(sd, $"stages.{stage}.{block}"));

    /// <summary>
    /// Block <paramref name="p"/> on <paramref name="x"/>. <paramref name="channels"/> is the block's input width (the
    /// convs' groups follow from it), updated to its output width.
    /// </summary>
    static string Block(GraphBuilder g, StateDict sd, string p, string x, int stride, double eps, IReadOnlyList<string> branches, ref long channels)
    {
        bool deployed = Deployed(sd, p);
        var kernel = sd.Require(deployed ? $"{p}.reparam_conv.weight" : $"{p}.{branches[0]}.conv.weight");
        int groups = checked((int)(channels / Math.Max(kernel.shape[1], 1)));
        channels = kernel.shape[0];
        if (deployed) return g.Relu(Attention(g, sd, p, g.Conv(x, $"{p}.reparam_conv", g.ReadConv($"{p}.reparam_conv"), stride, groups)), $"{p}.act");
        // The 1x1 branches must be 1x1 (a wider kernel would load into nothing of the family's).
        var terms = branches.Select(b => g.ConvBn(x, $"{p}.{b}.conv", $"{p}.{b}.bn", stride, groups, eps, b is "conv_1x1" or "conv_scale" ? 1 : null)).ToList();
        if (sd.ContainsKey($"{p}.identity.running_var"))
        {
            if (stride != 1) throw new ModelInputException(sd.Source, $"'{p}.identity' in a block of stride 2: the family's strides do not fit this checkpoint");
            terms.Add(g.BatchNorm(x, $"{p}.identity", eps));
        }
        return g.Relu(Attention(g, sd, p, g.SumAll(terms, $"{p}.add")), $"{p}.act");
    }

    /// <summary>timm's <c>attn</c> after the block's sum (SE, <c>attn.fc1/fc2</c>: MobileOne-S4's and RepVGG-with-SE's), where the block has one; a gate, kept.</summary>
    static string Attention(GraphBuilder g, StateDict sd, string p, string y) =>
        sd.ContainsKey($"{p}.attn.fc1.weight") ? g.SqueezeExcite(y, $"{p}.attn") : y;
}
