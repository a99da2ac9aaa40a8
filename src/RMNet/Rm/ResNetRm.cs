using RMNet.Models;
using RMNet.Plain;
using static TorchSharp.torch;

namespace RMNet.Rm;

/// <summary>
/// Turns a torchvision-layout ResNet into an equivalent plain network: stem conv+BN fused, every residual
/// block reserved and merged (<see cref="ResidualChainRm"/>), pooling and the classifier kept.
/// Every block input is non-negative: it is the output of the stem's ReLU+maxpool or of the previous
/// block's final ReLU.
/// </summary>
internal static class ResNetRm
{
    /// <summary>The plain network equivalent to the ResNet with layout <paramref name="spec"/> and weights <paramref name="sd"/>.</summary>
    /// <param name="sd">The weights, torchvision names.</param>
    /// <param name="spec">The layout.</param>
    /// <param name="mode">Grouped (default, cheapest exact form) or the paper's dense form for Bottleneck blocks.</param>
    /// <param name="progress">Told after each block; null for none.</param>
    /// <param name="cancellationToken">Checked after each block.</param>
    public static PlainModel Transform(StateDict sd, ResNetSpec spec, RmMode mode = RmMode.Grouped, IProgress<ProgressStep>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ResNetDetector.Validate(sd, spec);
        return Transform(sd, spec, FusedResNetWeights.Torchvision(sd, spec), mode, progress, cancellationToken);
    }

    /// <summary>
    /// The plain network of a ResNet whose stem and block weights come from <paramref name="weights"/> (the
    /// classifier and any SE weights from <paramref name="sd"/>); <paramref name="sd"/> is not validated here.
    /// </summary>
    public static PlainModel Transform(StateDict sd, ResNetSpec spec, FusedResNetWeights weights, RmMode mode = RmMode.Grouped,
        IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default)
    {
        var layers = new List<PlainLayer>();
        var stages = new List<string>();
        void Tag(string stage) { while (stages.Count < layers.Count) stages.Add(stage); }
        layers.AddRange(Scoped(() => Stem(weights.Stem(), spec)));
        Tag("stem");
        var blocks = spec.Blocks().ToList();
        int zeroChannels = 0;
        // Sequential on purpose: converting blocks on several threads was tried (median 0.30 s instead of 0.33 s for
        // a dense ResNet-50) but libtorch then splits reductions differently per thread, and outputs stopped being
        // byte-identical from run to run.
        for (int i = 0; i < blocks.Count; i++)
        {
            var block = blocks[i];
            layers.AddRange(Scoped(() =>
            {
                var projection = weights.Projection(block);
                bool se = spec.SeChannels is not null;
                var rm = ResidualChainRm.Transform(weights.Branch(block), projection, mode, mergeShortcut: !se);
                zeroChannels += rm.ZeroChannels;
                var chain = rm.Convs.SelectMany(conv => new PlainLayer[] { conv, new ReluLayer() }).ToList();
                return se ? SqueezeExciteMerge(sd, block, chain, projection) : chain;
            }));
            Tag($"layer{block.Stage + 1}");
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new ProgressStep("converting", i + 1, blocks.Count));
        }
        layers.Add(new GlobalAvgPoolLayer());
        layers.Add(new FlattenLayer());
        layers.Add(new LinearLayer(sd.Require("fc.weight").to_type(ScalarType.Float32).clone(), sd.Require("fc.bias").to_type(ScalarType.Float32).clone()));
        Tag("head");
        return new PlainModel(layers, spec.InputChannels) { ZeroChannels = zeroChannels, LayerStages = stages };
    }

    /// <summary>The stem, BN folded: conv + ReLU, and torchvision's max pool where the layout has it.</summary>
    static IReadOnlyList<PlainLayer> Stem(Weights.FusedConv conv, ResNetSpec spec)
    {
        var stem = new List<PlainLayer> { conv.ToLayer(), new ReluLayer() };
        if (spec.StemMaxPool) stem.Add(new MaxPoolLayer(3, 2, Padding2d.All(1)));
        return stem;
    }

    /// <summary>
    /// An SE block: the last conv passed the reserved input through (no ReLU may follow it), SE gates the branch
    /// channels only, then a 1x1 conv adds the shortcut (identity, or the projection applied to the already
    /// strided reserved channels) and the block's ReLU follows. SE keeps its gating branch in the plain network.
    /// </summary>
    static List<PlainLayer> SqueezeExciteMerge(StateDict sd, BlockSpec block, List<PlainLayer> layers, Weights.FusedConv? projection)
    {
        layers.RemoveAt(layers.Count - 1);   // no ReLU between the last conv and SE
        var last = (ConvLayer)layers[^1];
        long reserved = last.OutChannels - block.OutChannels;
        string p = $"{block.Prefix}.se";
        Tensor W(string key) => sd.Require(key).to_type(ScalarType.Float32).clone();
        layers.Add(new SeLayer(reserved, block.OutChannels, W($"{p}.fc1.weight"), W($"{p}.fc1.bias"), W($"{p}.fc2.weight"), W($"{p}.fc2.bias")));
        var merge = zeros(new long[] { block.OutChannels, reserved + block.OutChannels, 1, 1 }, dtype: ScalarType.Float64);
        var rows = arange(block.OutChannels, dtype: ScalarType.Int64);
        merge.index_put_(ones(block.OutChannels, dtype: ScalarType.Float64), rows, rows + reserved, tensor(0L), tensor(0L));
        Tensor bias;
        if (projection is null)
        {
            merge.index_put_(ones(block.OutChannels, dtype: ScalarType.Float64), rows, rows, tensor(0L), tensor(0L));
            bias = zeros(block.OutChannels, dtype: ScalarType.Float64);
        }
        else
        {
            merge[TensorIndex.Colon, TensorIndex.Slice(0, block.InChannels)] = projection.Weights.Weight;
            bias = projection.Weights.BiasOrZeros();
        }
        layers.Add(new ConvLayer(merge.to_type(ScalarType.Float32), bias.to_type(ScalarType.Float32), 1, 1, Padding2d.All(0), 1));
        layers.Add(new ReluLayer());
        return layers;
    }

    /// <summary>
    /// Runs one step in its own dispose scope and keeps only the resulting layers' tensors, so the float64
    /// intermediates of a block are freed before the next block is transformed (bounded peak memory).
    /// </summary>
    static IReadOnlyList<PlainLayer> Scoped(Func<IReadOnlyList<PlainLayer>> step)
    {
        using var scope = NewDisposeScope();
        return PlainLayer.MoveToOuterDisposeScope(step());
    }
}
