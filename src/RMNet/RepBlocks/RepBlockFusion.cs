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
        long outChannels = dense.shape[0], perGroup = dense.shape[1];
        var oneByOne = Kernel(sd, block.OneByOneConv + ".weight", 1, dense);
        // The groups are in no tensor; the identity fixes them (as many outputs as inputs), and without it they do not
        // enter the sum of kernels.
        int groups = 1;
        if (block.HasIdentity)
        {
            if (outChannels % perGroup != 0)
                throw new ModelInputException(sd.Source, $"block '{sd.RemovedPrefix}{block.Prefix}': an identity branch needs as many outputs as inputs, but {outChannels} outputs are no whole number of groups of {perGroup} inputs");
            groups = checked((int)(outChannels / perGroup));
        }
        var fused = BranchFusion.Merge((new ConvWeights(dense, null), Bn(sd, block.DenseBn, outChannels, eps)),
            (new ConvWeights(oneByOne, null), Bn(sd, block.OneByOneBn, outChannels, eps)),
            block.HasIdentity ? Bn(sd, block.Identity, outChannels, eps) : null, stride: 1, Padding2d.All(1), groups);
        return fused.Weights;
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
    static BatchNormWeights Bn(StateDict sd, string bn, long channels, Func<string, double> eps)
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
