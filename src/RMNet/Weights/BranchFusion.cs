using RMNet.Plain;
using static TorchSharp.torch;

namespace RMNet.Weights;

/// <summary>
/// RepVGG's structural re-parameterisation in one place: parallel branches that read the same input and are
/// summed (a kxk conv+BN, a 1x1 conv+BN, an identity BN) become one kxk conv. Each branch is fused with its BN,
/// the 1x1 kernel is placed at the kxk kernel's centre tap, the identity becomes a (grouped) Dirac kernel, then
/// kernels and biases are added (docs/design.md section 2). float64 throughout.
/// </summary>
public static class BranchFusion
{
    /// <summary>The single conv equivalent to the sum of the branches.</summary>
    /// <param name="dense">The kxk branch (conv weights and its BN).</param>
    /// <param name="oneByOne">The 1x1 branch, or null.</param>
    /// <param name="identity">The identity branch's BN, or null (needs in == out channels and stride 1).</param>
    /// <param name="stride">Stride of the kxk and 1x1 convs.</param>
    /// <param name="padding">Padding of the kxk conv; the 1x1 conv must read the tap it puts at (Top, Left).</param>
    /// <param name="groups">Groups of both convs.</param>
    public static FusedConv Merge((ConvWeights Conv, BatchNormWeights Bn) dense, (ConvWeights Conv, BatchNormWeights Bn)? oneByOne,
        BatchNormWeights? identity, int stride, Padding2d padding, int groups)
    {
        var k = BatchNormFusion.Fuse(dense.Conv, dense.Bn);
        long kh = k.Weight.shape[2], kw = k.Weight.shape[3];
        var weight = k.Weight.clone();
        var bias = k.BiasOrZeros().clone();
        if (oneByOne is { } b)
        {
            var one = BatchNormFusion.Fuse(b.Conv, b.Bn);
            weight += Kernels.PadOneByOne(one.Weight, kh, kw, padding.Top, padding.Left);
            bias += one.BiasOrZeros();
        }
        if (identity is not null)
        {
            if (stride != 1 || k.Weight.shape[0] != k.Weight.shape[1] * groups)
                throw new RmException($"an identity branch needs stride 1 and as many outputs as inputs, got stride {stride}, {k.Weight.shape[1] * groups} -> {k.Weight.shape[0]}");
            var id = BatchNormFusion.Fuse(new ConvWeights(Kernels.GroupedDirac(k.Weight.shape[0], groups, kh, kw, padding.Top, padding.Left), null), identity);
            weight += id.Weight;
            bias += id.BiasOrZeros();
        }
        return new FusedConv(new ConvWeights(weight, bias), stride, padding, groups);
    }
}
