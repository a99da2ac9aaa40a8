using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Lowering;

/// <summary>
/// DBB's Diverse Branch Block, the sum of four branches; in deploy form the one conv <c>dbb_reparam</c> (with bias).
/// <list type="bullet">
/// <item><c>dbb_origin</c>: kxk <c>.conv</c> + <c>.bn</c>.</item>
/// <item><c>dbb_1x1</c>: 1x1 <c>.conv</c> + <c>.bn</c> (absent in a depthwise block).</item>
/// <item><c>dbb_avg</c>: 1x1 <c>.conv</c>, BNAndPad <c>.bn.bn</c>, kxk average pool, BN <c>.avgbn</c>; in a depthwise
///   block only the pool (zero-padded, counting the padding) and <c>.avgbn</c>.</item>
/// <item><c>dbb_1x1_kxk</c>: 1x1 <c>.idconv1</c> (its weight plus the identity) or <c>.conv1</c>, BNAndPad
///   <c>.bn1.bn</c>, kxk <c>.conv2</c> (unpadded), BN <c>.bn2</c>.</item>
/// </list>
/// Each branch is written as one conv: an average pool that counts its zero padding is a conv of 1/k^2 taps, and a
/// 1x1 conv + BN whose output is padded with the BN's value for a zero input, then a kxk conv, is the pair on a
/// zero-padded input (<see cref="PointwiseThenConv"/>). The branch-merge pass then makes the four one conv.
/// </summary>
internal static class DiverseBranchBlock
{
    /// <summary>The block kind, for networks built of it.</summary>
    public static readonly ReparamBlockKind Kind = new("DBB (DiverseBranchBlock)", "dbb_origin.conv.weight", "dbb_reparam.weight", Lower);

    static string Lower(GraphBuilder g, StateDict sd, string p, string x, int stride, int groups, double eps)
    {
        if (Kind.Deployed(sd, p)) return g.Conv(x, $"{p}.dbb_reparam", g.ReadConv($"{p}.dbb_reparam"), stride, groups);
        var origin = g.WithBatchNorm(g.ReadConv($"{p}.dbb_origin.conv"), $"{p}.dbb_origin.bn", eps);
        long outChannels = origin.OutChannels, k = origin.Weight.shape[2];
        var terms = new List<string> { g.Conv(x, $"{p}.dbb_origin", origin, stride, groups) };
        if (sd.ContainsKey($"{p}.dbb_1x1.conv.weight")) terms.Add(g.ConvBn(x, $"{p}.dbb_1x1.conv", $"{p}.dbb_1x1.bn", stride, groups, eps));

        var average = g.WithBatchNorm(new ConvWeights(Kernels.Average(outChannels, groups, k), null), $"{p}.dbb_avg.avgbn", eps);
        if (sd.ContainsKey($"{p}.dbb_avg.conv.weight"))
            average = Merge(sd, $"{p}.dbb_avg", g.WithBatchNorm(g.ReadConv($"{p}.dbb_avg.conv"), $"{p}.dbb_avg.bn.bn", eps), average, groups);
        terms.Add(g.Conv(x, $"{p}.dbb_avg", average, stride, groups));

        string chain = $"{p}.dbb_1x1_kxk";
        var first = sd.ContainsKey($"{chain}.idconv1.weight") ? IdentityBased(sd, g.ReadConv($"{chain}.idconv1"), $"{chain}.idconv1", groups) : g.ReadConv($"{chain}.conv1");
        var second = g.WithBatchNorm(g.ReadConv($"{chain}.conv2"), $"{chain}.bn2", eps);
        terms.Add(g.Conv(x, chain, Merge(sd, chain, g.WithBatchNorm(first, $"{chain}.bn1.bn", eps), second, groups), stride, groups));
        return g.SumAll(terms, $"{p}.add");
    }

    /// <summary>IdentityBasedConv1x1's kernel: its weight plus the grouped identity (which the state dict does not hold).</summary>
    static ConvWeights IdentityBased(StateDict sd, ConvWeights conv, string name, int groups)
    {
        var identity = Kernels.GroupedDirac(conv.OutChannels, groups, 1, 1, 0, 0);
        if (!conv.Weight.shape.SequenceEqual(identity.shape))
            throw new ModelInputException(sd.Source, $"key '{name}.weight' has shape [{string.Join(", ", conv.Weight.shape)}], expected [{string.Join(", ", identity.shape)}] (an identity-based 1x1 conv)");
        return new(conv.Weight.to_type(ScalarType.Float64) + identity, null);
    }

    /// <summary>The branch <paramref name="branch"/>'s 1x1 conv then kxk conv as one, refused (naming the branch) where their shapes do not chain.</summary>
    static ConvWeights Merge(StateDict sd, string branch, ConvWeights first, ConvWeights second, int groups)
    {
        try { return PointwiseThenConv.Merge(first, second, groups); }
        catch (ArgumentException e) { throw new ModelInputException(sd.Source, $"branch '{branch}': {e.Message}"); }
    }
}
