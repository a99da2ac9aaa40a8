using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.RepBlocks;

/// <summary>
/// A block's deploy form as the real code makes it (YOLOv7's <c>RepConv.fuse_repvgg_block</c>, YOLOv6's
/// <c>fuse_model</c> then <c>RepVGGBlock.switch_to_deploy</c>): each branch's conv fused with its BN, the 1x1 kernel at
/// the 3x3 kernel's centre tap, the identity BN as a (grouped) Dirac kernel, summed (<see cref="BranchFusion"/>, in
/// float64). The shapes are checked first, naming the tensor.
/// </summary>
internal static class RepBlockFusion
{
    /// <summary>The fused 3x3 kernel and bias (float64) of training-form <paramref name="block"/>.</summary>
    /// <param name="sd">The checkpoint's tensors.</param>
    /// <param name="block">A block in training form.</param>
    /// <param name="eps">The epsilon of the BN module named (a whole module's saved one, --bn-eps, or 1e-3).</param>
    public static ConvWeights Fuse(StateDict sd, RepBlock block, Func<string, double> eps)
    {
        var dense = Kernel(sd, block.DenseConv + ".weight", 3, null);
        long outChannels = dense.shape[0];
        var oneByOne = Kernel(sd, block.OneByOneConv + ".weight", 1, dense);
        int groups = Groups(sd, block, dense);
        if (block.BareOneByOne)
        {
            // QARepVGG: only the 3x3 branch has a BN; the 1x1 kernel, the identity and the average pool add as they are
            // (the BN after the sum stays a BN, as YOLOv6's switch_to_deploy keeps it).
            var k = BatchNormFusion.Fuse(new ConvWeights(dense, null), Bn(sd, block.DenseBn, outChannels, eps));
            var weight = k.Weight + Kernels.PadOneByOne(oneByOne.to_type(ScalarType.Float64), 3, 3, 1, 1);
            if (block.HasIdentity) weight += Kernels.GroupedDirac(outChannels, groups, 3, 3, 1, 1);
            if (block.HasAverage) weight += Kernels.Average(outChannels, groups, 3);
            return new ConvWeights(weight, k.BiasOrZeros());
        }
        var fused = BranchFusion.Merge((new ConvWeights(dense, null), Bn(sd, block.DenseBn, outChannels, eps)),
            (new ConvWeights(oneByOne, null), Bn(sd, block.OneByOneBn, outChannels, eps)),
            block.HasIdentity ? Bn(sd, block.Identity, outChannels, eps) : null, stride: 1, Padding2d.All(1), groups);
        return fused.Weights;
    }

    /// <summary>
    /// The groups of the block's convs, which are in no tensor: the identity (or average pool) fixes them, as many outputs
    /// as inputs; without either they do not enter the sum of kernels (1).
    /// </summary>
    public static int Groups(StateDict sd, RepBlock block, Tensor dense)
    {
        long outChannels = dense.shape[0], perGroup = dense.shape[1];
        if (!block.HasIdentity && !block.HasAverage) return 1;
        if (outChannels % perGroup != 0)
            throw new ModelInputException(sd.Source, $"block '{sd.RemovedPrefix}{block.Prefix}': an identity branch needs as many outputs as inputs, but {outChannels} outputs are no whole number of groups of {perGroup} inputs");
        return checked((int)(outChannels / perGroup));
    }

    /// <summary>A conv weight [out, in/groups, k, k]; a 1x1 kernel must have the 3x3 kernel's outputs and inputs.</summary>
    static Tensor Kernel(StateDict sd, string key, int k, Tensor? dense)
    {
        var w = sd.Require(key);
        bool fits = w.dim() == 4 && w.shape[2] == k && w.shape[3] == k && (dense is null || (w.shape[0] == dense.shape[0] && w.shape[1] == dense.shape[1]));
        if (!fits)
            throw new ModelInputException(sd.Source, $"key '{sd.RemovedPrefix}{key}' has shape [{string.Join(", ", w.shape)}], expected " +
                (dense is null ? "[out, in/groups, 3, 3] (both projects' blocks are 3x3)" : $"[{dense.shape[0]}, {dense.shape[1]}, 1, 1] as its block's 3x3 kernel"));
        return w;
    }

    /// <summary>BN module <paramref name="bn"/>'s four vectors of <paramref name="channels"/> values.</summary>
    internal static BatchNormWeights Bn(StateDict sd, string bn, long channels, Func<string, double> eps)
    {
        Tensor Vector(string name)
        {
            var t = sd.Require($"{bn}.{name}");
            return t.dim() == 1 && t.shape[0] == channels ? t
                : throw new ModelInputException(sd.Source, $"key '{sd.RemovedPrefix}{bn}.{name}' has shape [{string.Join(", ", t.shape)}], expected [{channels}]");
        }
        return new BatchNormWeights(Vector("weight"), Vector("bias"), Vector("running_mean"), Vector("running_var"), eps(bn));
    }
}
