using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Rm;

/// <summary>
/// The RM operation on one residual block whose residual branch is a chain of convs with ReLUs between them
/// (BasicBlock: 2 convs; Bottleneck: 3), and whose output is relu(chain(x) + shortcut(x)).
/// <para>Preconditions, checked here:</para>
/// <list type="bullet">
/// <item>The block input is non-negative (it comes out of a ReLU), so the reserved copy survives every ReLU.
///   The caller vouches for this; torchvision ResNets satisfy it.</item>
/// <item>Every conv pads k-1 in total per axis, so reserved channels and the shortcut keep the same size.</item>
/// <item>The reserved channel's Dirac tap is the conv's begin padding and must lie inside the kernel (rm-math.md 6).</item>
/// <item>Identity shortcut: overall stride 1, same channels. Projection: a 1x1 conv, no padding, stride equal to
///   the product of the chain's strides.</item>
/// </list>
/// Dense form (the paper's): middle convs become one dense conv, block-diagonal [[Dirac, 0], [0, W]].
/// </summary>
public static class ResidualChainRm
{
    /// <summary>Reserve-and-merge: returns the plain convs; a ReLU follows each of them in the plain network.</summary>
    /// <param name="chain">The residual branch, BN folded in, in order (at least two convs).</param>
    /// <param name="projection">The fused 1x1 projection shortcut, or null for the identity.</param>
    public static IReadOnlyList<ConvLayer> Transform(IReadOnlyList<FusedConv> chain, FusedConv? projection)
    {
        if (chain.Count < 2) throw new RmException("a residual branch needs at least two convs to reserve and merge");
        long c = chain[0].InChannels;
        CheckShortcut(chain, projection, c);

        var layers = new List<ConvLayer>(chain.Count);
        for (int i = 0; i < chain.Count; i++)
        {
            var conv = chain[i];
            CheckSamePadding(conv, i);
            var (tapH, tapW) = (conv.Padding.Top, conv.Padding.Left);
            var w = conv.DenseKernel();
            var b = conv.Weights.BiasOrZeros();
            Tensor weight, bias;
            if (i == 0)
            {
                // Reserve: C extra output channels carry x (Dirac at the tap that reads x[i*s]).
                weight = cat(new[] { Kernels.Dirac(c, conv.KernelH, conv.KernelW, tapH, tapW), w }, 0);
                bias = cat(new[] { zeros(c, dtype: ScalarType.Float64), b }, 0);
            }
            else if (i < chain.Count - 1)
            {
                // Pass the reserved channels through: block-diagonal with a Dirac.
                weight = Kernels.BlockDiagonal(Kernels.Dirac(c, conv.KernelH, conv.KernelW, tapH, tapW), w);
                bias = cat(new[] { zeros(c, dtype: ScalarType.Float64), b }, 0);
            }
            else
            {
                // Merge: the shortcut becomes the columns that read the reserved channels.
                var shortcut = projection is null
                    ? Kernels.Dirac(c, conv.KernelH, conv.KernelW, tapH, tapW)
                    : Kernels.PadOneByOne(projection.DenseKernel(), conv.KernelH, conv.KernelW, tapH, tapW);
                weight = cat(new[] { shortcut, w }, 1);
                bias = projection is null ? b : b + projection.Weights.BiasOrZeros();
            }
            layers.Add(new FusedConv(new ConvWeights(weight, bias), conv.Stride, conv.Padding).ToLayer());
        }
        return layers;
    }

    static void CheckSamePadding(FusedConv conv, int index)
    {
        var p = conv.Padding;
        if (p.Top + p.Bottom != conv.KernelH - 1 || p.Left + p.Right != conv.KernelW - 1)
            throw new RmException($"conv {index + 1} of the block pads {p} with a {conv.KernelH}x{conv.KernelW} kernel: the reserved input would not line up with the shortcut");
    }

    static void CheckShortcut(IReadOnlyList<FusedConv> chain, FusedConv? projection, long c)
    {
        int stride = chain.Aggregate(1, (s, conv) => s * conv.Stride);
        long outC = chain[^1].OutChannels;
        if (projection is null)
        {
            if (stride != 1 || outC != c)
                throw new RmException($"identity shortcut with stride {stride} and {c} -> {outC} channels cannot be added");
            return;
        }
        if (projection.KernelH != 1 || projection.KernelW != 1 || projection.Padding != Padding2d.All(0))
            throw new RmException($"projection shortcut must be a 1x1 conv without padding, got {projection.KernelH}x{projection.KernelW} padding {projection.Padding}");
        if (projection.Stride != stride)
            throw new RmException($"projection stride {projection.Stride} differs from the residual branch's stride {stride}");
        if (projection.InChannels != c || projection.OutChannels != outC)
            throw new RmException($"projection maps {projection.InChannels} -> {projection.OutChannels} channels, the block {c} -> {outC}");
    }
}
