using RMNet.Plain;
using RMNet.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Rm;

/// <summary>How the middle convs of a block carry the reserved channels (docs/design.md sections 4 and 5).</summary>
public enum RmMode
{
    /// <summary>
    /// One grouped conv: the original groups plus groups of the same width that pass the reserved channels
    /// through with Dirac kernels. Exact, and far cheaper for Bottleneck/ResNeXt blocks. The default.
    /// </summary>
    Grouped,
    /// <summary>The paper's form: one dense conv, block-diagonal [[Dirac, 0], [0, W]] over C + width channels.</summary>
    Dense,
}

/// <summary>The plain convs of one block, and how many zero channels grouped RM added to make groups divide.</summary>
/// <param name="Convs">The plain convs; a ReLU follows each of them in the plain network.</param>
/// <param name="ZeroChannels">Reserved channels added as zeros (grouped form, where C is not a multiple of the group width).</param>
internal sealed record RmBlock(IReadOnlyList<ConvLayer> Convs, int ZeroChannels);

/// <summary>
/// The RM operation on one residual block whose residual branch is a chain of convs with ReLUs between them
/// (BasicBlock: 2 convs; Bottleneck: 3), and whose output is relu(chain(x) + shortcut(x)).
/// <para>Preconditions, checked here:</para>
/// <list type="bullet">
/// <item>The block input is non-negative (it comes out of a ReLU), so the reserved copy survives every ReLU.
///   The caller vouches for this; torchvision ResNets satisfy it.</item>
/// <item>Every conv pads k-1 in total per axis, so reserved channels and the shortcut keep the same size.</item>
/// <item>The reserved channel's Dirac tap is the conv's begin padding and must lie inside the kernel (docs/design.md section 6).</item>
/// <item>Identity shortcut: overall stride 1, same channels. Projection: a 1x1 conv, no padding, stride equal to
///   the product of the chain's strides; or, with <c>shortcutPool</c> s (ResNet-D), an s x s average pool of stride s
///   followed by a stride-1 1x1 conv, where the chain has exactly one conv of stride s and it is not the last.</item>
/// </list>
/// With a pooled shortcut, the strided conv carries the reserved channels with an averaging kernel (1/s² on the
/// s x s taps from its Dirac tap on) instead of a Dirac: exact where every pooling window is whole, i.e. where the
/// map entering that conv has H and W divisible by s (docs/design.md section 6).
/// Weight arithmetic (BN fusion, shortcut biases) is float64 in the inputs; kernels are assembled directly in
/// float32, each value cast once, so no float64 copy of the large plain kernels is ever made.
/// </summary>
internal static class ResidualChainRm
{
    /// <summary>Reserve-and-merge in the given form.</summary>
    /// <param name="chain">The residual branch, BN folded in, in order (at least two convs).</param>
    /// <param name="projection">The fused 1x1 projection shortcut, or null for the identity.</param>
    /// <param name="mode">Dense or grouped middle convs.</param>
    /// <param name="mergeShortcut">
    /// False leaves the merge to the caller: the last conv then passes the reserved channels through like a middle
    /// conv (output [reserved ; branch]), so something can act on the branch alone first (squeeze-and-excitation).
    /// </param>
    /// <param name="inputSize">The block input's H and W where the graph fixes them (then padding need only line up at that size).</param>
    /// <param name="shortcutPool">s where the shortcut average-pools s x s with stride s before its 1x1 conv (ResNet-D); 1 otherwise.</param>
    public static RmBlock Transform(IReadOnlyList<FusedConv> chain, FusedConv? projection, RmMode mode = RmMode.Grouped, bool mergeShortcut = true,
        (long H, long W)? inputSize = null, int shortcutPool = 1)
    {
        if (chain.Count < 2) throw new RmException("a residual branch needs at least two convs to reserve and merge");
        long c = chain[0].InChannels;
        CheckShortcut(chain, projection, c, shortcutPool);
        // The conv that averages the carried channels: the chain's strided one (CheckShortcut made sure there is one, not the last).
        int pooling = shortcutPool > 1 ? chain.ToList().FindIndex(conv => conv.Stride == shortcutPool) : -1;
        if (AlignmentProblem(chain, inputSize) is string problem) throw new RmException(problem);

        // Grouped middle convs need the reserved channels in whole groups of the middle convs' group width.
        long reserved = c;
        if (mode == RmMode.Grouped && chain.Count > 2)
        {
            long q = chain.Skip(1).Take(chain.Count - 2).Select(m => m.InChannels / m.Groups).Aggregate(1L, Lcm);
            reserved = (c + q - 1) / q * q;
        }

        var layers = new List<ConvLayer>(chain.Count);
        for (int i = 0; i < chain.Count; i++)
        {
            var conv = chain[i];
            var w = conv.Weights.Weight.to_type(ScalarType.Float32);
            var b = conv.Weights.BiasOrZeros();
            long k1 = conv.KernelH, k2 = conv.KernelW;
            long tapH = conv.Padding.Top, tapW = conv.Padding.Left;
            ConvLayer layer;
            if (i == 0)
            {
                // Reserve: the first C outputs carry x (Dirac at the tap that reads x[i*s]); padding rows stay zero.
                var weight = FreshZeros.Float32(reserved + conv.OutChannels, c, k1, k2);
                PutDirac(weight, c, 0, tapH, tapW, groupWidth: c, window: i == pooling ? shortcutPool : 1);
                weight[TensorIndex.Slice(reserved)] = Kernels.Ungroup(w, conv.Groups);
                layer = Layer(weight, Concat(reserved, b), conv, 1);
            }
            else if ((i < chain.Count - 1 || !mergeShortcut) && (mode == RmMode.Dense || conv.OutChannels != conv.InChannels || i == chain.Count - 1))
            {
                // Dense (also where a middle conv changes the width: its groups would not all be q wide).
                var weight = FreshZeros.Float32(reserved + conv.OutChannels, reserved + conv.InChannels, k1, k2);
                PutDirac(weight, c, 0, tapH, tapW, groupWidth: reserved, window: i == pooling ? shortcutPool : 1);
                weight[TensorIndex.Slice(reserved), TensorIndex.Slice(reserved)] = Kernels.Ungroup(w, conv.Groups);
                layer = Layer(weight, Concat(reserved, b), conv, 1);
            }
            else if (i < chain.Count - 1 || !mergeShortcut)
            {
                // Grouped: reserved channels in groups of width q with a Dirac each, then the original groups.
                long q = conv.InChannels / conv.Groups;
                var weight = FreshZeros.Float32(reserved + conv.OutChannels, q, k1, k2);
                PutDirac(weight, c, 0, tapH, tapW, groupWidth: q, window: i == pooling ? shortcutPool : 1);
                weight[TensorIndex.Slice(reserved)] = w;
                layer = Layer(weight, Concat(reserved, b), conv, (int)(reserved / q) + conv.Groups);
            }
            else
            {
                // Merge: the shortcut becomes the columns that read the reserved channels.
                var weight = FreshZeros.Float32(conv.OutChannels, reserved + conv.InChannels, k1, k2);
                if (projection is null)
                    PutDirac(weight, c, 0, tapH, tapW, groupWidth: reserved);
                else
                    weight[TensorIndex.Colon, TensorIndex.Slice(0, c)] = Kernels.PadOneByOne(projection.DenseKernel(), k1, k2, tapH, tapW).to_type(ScalarType.Float32);
                weight[TensorIndex.Colon, TensorIndex.Slice(reserved)] = Kernels.Ungroup(w, conv.Groups);
                var bias = projection is null ? b : b + projection.Weights.BiasOrZeros();
                layer = Layer(weight, bias.to_type(ScalarType.Float32), conv, 1);
            }
            layers.Add(layer);
        }
        return new RmBlock(layers, (int)(reserved - c));
    }

    /// <summary>
    /// W[o, o mod groupWidth, tapH, tapW] = 1 for the first <paramref name="channels"/> rows (docs/design.md section 2);
    /// with a <paramref name="window"/> of s, 1/s² on the s x s taps from (tapH, tapW) on: an s x s average pool.
    /// </summary>
    static void PutDirac(Tensor weight, long channels, long firstRow, long tapH, long tapW, long groupWidth, int window = 1)
    {
        if (tapH + window > weight.shape[2] || tapW + window > weight.shape[3] || tapH < 0 || tapW < 0)
            throw new RmException(window == 1
                ? $"a {weight.shape[2]}x{weight.shape[3]} kernel has no tap ({tapH},{tapW}): its begin padding is too large to carry the input through"
                : $"a {weight.shape[2]}x{weight.shape[3]} kernel with begin padding ({tapH},{tapW}) cannot hold the shortcut's {window}x{window} average pool");
        var rows = arange(firstRow, firstRow + channels, dtype: ScalarType.Int64);
        for (int dh = 0; dh < window; dh++)
            for (int dw = 0; dw < window; dw++)
                weight.index_put_(full(channels, 1f / (window * window)), rows, rows.remainder(groupWidth), tensor(tapH + dh), tensor(tapW + dw));
    }

    static Tensor Concat(long zeroCount, Tensor bias) =>
        cat(new[] { zeros(zeroCount, dtype: ScalarType.Float64), bias }, 0).to_type(ScalarType.Float32);

    static ConvLayer Layer(Tensor weight, Tensor bias, FusedConv conv, int groups) =>
        new(weight, bias, conv.Stride, conv.Stride, conv.Padding, groups);

    static long Lcm(long a, long b)
    {
        long x = a, y = b;
        while (y != 0) (x, y) = (y, x % y);
        return a / x * b;
    }

    /// <summary>
    /// Why the reserved input would not line up with the shortcut, or null. Each conv's Dirac tap (its begin
    /// padding) must lie inside its kernel. Without a known input size every conv must pad k-1 in total, which
    /// keeps sizes equal for any input; with one (a graph with a fixed input), the chain's output size at that
    /// size must equal the shortcut's (a 1x1 conv of the chain's total stride, or the identity).
    /// </summary>
    public static string? AlignmentProblem(IReadOnlyList<FusedConv> chain, (long H, long W)? inputSize)
    {
        for (int i = 0; i < chain.Count; i++)
        {
            var conv = chain[i];
            var p = conv.Padding;
            if (p.Top >= conv.KernelH || p.Left >= conv.KernelW || p.Top < 0 || p.Left < 0)
                return $"conv {i + 1} of the block: a {conv.KernelH}x{conv.KernelW} kernel has no tap ({p.Top},{p.Left}): its begin padding is too large to carry the input through";
            if (inputSize is null && (p.Top + p.Bottom != conv.KernelH - 1 || p.Left + p.Right != conv.KernelW - 1))
                return $"conv {i + 1} of the block pads {p} with a {conv.KernelH}x{conv.KernelW} kernel: the reserved input would not line up with the shortcut";
        }
        if (inputSize is not (long h0, long w0)) return null;
        long h = h0, w = w0;
        foreach (var conv in chain)
        {
            h = (h + conv.Padding.Top + conv.Padding.Bottom - conv.KernelH) / conv.Stride + 1;
            w = (w + conv.Padding.Left + conv.Padding.Right - conv.KernelW) / conv.Stride + 1;
        }
        int stride = chain.Aggregate(1, (s, conv) => s * conv.Stride);
        long sh = (h0 - 1) / stride + 1, sw = (w0 - 1) / stride + 1;
        return h == sh && w == sw ? null
            : $"at the fixed input size {h0}x{w0} the branch gives {h}x{w} and the shortcut {sh}x{sw}";
    }

    static void CheckShortcut(IReadOnlyList<FusedConv> chain, FusedConv? projection, long c, int shortcutPool = 1)
    {
        int stride = chain.Aggregate(1, (s, conv) => s * conv.Stride);
        if (shortcutPool > 1)
        {
            if (projection is null) throw new RmException("an average-pooled shortcut needs its 1x1 conv");
            var strided = chain.Select((conv, i) => (conv, i)).Where(p => p.conv.Stride != 1).ToList();
            if (strided is not [var only] || only.conv.Stride != shortcutPool || only.i == chain.Count - 1)
                throw new RmException($"the shortcut average-pools {shortcutPool}x{shortcutPool}; the branch must have one conv of that stride, not its last");
            if (projection.Stride != 1) throw new RmException($"an average-pooled shortcut's 1x1 conv has stride {projection.Stride}, not 1");
            stride = 1;   // the pool strides; its conv does not
        }
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
