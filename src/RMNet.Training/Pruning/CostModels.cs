using RMNet.Models;
using RMNet.Plain;

namespace RMNet.Pruning;

/// <summary>The <see cref="ChannelCostModel"/>s of the two things pruned here: a plain network and a ResNet's inner channels.</summary>
internal static class CostModels
{
    /// <summary>
    /// Every conv of a plain network is prunable: conv i costs kh*kw*Ho*Wo * n_(i-1) * n_i (the first conv's input
    /// is the image), the classifier costs classes * n_last.
    /// </summary>
    public static ChannelCostModel Plain(PlainModel model, int height, int width)
    {
        var convs = model.Convs.ToList();
        var cost = new ChannelCostModel(convs.Count);
        var shape = ((long)model.InputChannels, (long)height, (long)width);
        int index = -1;
        foreach (var layer in model.Layers)
        {
            var output = layer.OutputShape(shape);
            if (layer is ConvLayer c)
            {
                index++;
                long perPair = (long)c.KernelH * c.KernelW * output.H * output.W;
                if (index == 0) cost.AddLinear(0, perPair * model.InputChannels);
                else cost.AddPair(index - 1, index, perPair);
            }
            else if (layer is LinearLayer l)
            {
                if (index < 0) cost.Constant += l.MultiplyAccumulates(shape);
                else cost.AddLinear(index, l.Weight.shape[0]);
            }
            else cost.Constant += layer.MultiplyAccumulates(shape);
            shape = output;
        }
        return cost;
    }

    /// <summary>
    /// Only the inner channels of each Basic block are prunable under the residual constraint (the block's input
    /// and output are tied to the shortcut): inner width w of a block costs 9 * Ho * Wo * (in + out) * w; the
    /// stem, shortcuts and classifier are constant.
    /// </summary>
    public static ChannelCostModel ResidualInner(ResNetSpec spec, int height, int width)
    {
        if (spec.Block != BlockKind.Basic)
            throw new RmException("residual-constrained pruning is implemented for Basic-block ResNets (ResNet-18/34, CIFAR ResNet-20..110)");
        var blocks = ResNetCost.BlockSizes(spec, height, width).ToList();
        var cost = new ChannelCostModel(blocks.Count);
        long inner = 0;
        for (int i = 0; i < blocks.Count; i++)
        {
            var (b, _, _, h, w) = blocks[i];
            long perChannel = 9 * h * w * (b.InChannels + b.OutChannels);
            cost.AddLinear(i, perChannel);
            inner += perChannel * b.Width;
        }
        cost.Constant = ResNetCost.MultiplyAccumulates(spec, height, width) - inner;
        return cost;
    }
}
