using Onnx;
using RMNet.Models;

namespace RMNet.Lowering;

/// <summary>
/// torchvision's ResNets and ResNeXts, the CIFAR layouts and timm-named SE-ResNets, in the layout a
/// <see cref="ResNetSpec"/> gives (detected from the names and shapes, or named with <c>--arch</c>): stem
/// <c>conv1</c> + <c>bn1</c> + ReLU (+ torchvision's 3x3 max pool), blocks <c>layerN.M</c> (Basic or Bottleneck, the
/// stride where the spec puts it, <c>downsample.0/.1</c> projections, <c>se.fc1/fc2</c>), global pool and <c>fc</c>.
/// The blocks are timm ResNet's (<see cref="TimmResNet"/>), whose names are torchvision's.
/// </summary>
internal static class TorchvisionResNet
{
    /// <summary>The network as a graph; torchvision's BatchNorms use epsilon 1e-5.</summary>
    public static ModelProto Lower(StateDict sd, ResNetSpec spec)
    {
        const double eps = 1e-5;
        var g = new GraphBuilder(sd);
        string x = g.Relu(g.ConvBn(g.Input, "conv1", "bn1", spec.StemStride, eps: eps), "relu");
        if (spec.StemMaxPool) x = g.MaxPool(x, "maxpool", 3, 2, 1);
        foreach (var b in spec.Blocks())
            x = spec.Block == BlockKind.Basic
                ? TimmResNet.Basic(g, sd, b.Prefix, x, b.Stride, eps)
                : TimmResNet.Bottleneck(g, sd, b.Prefix, x, b.Stride, eps);
        g.Classifier(x, "fc");
        return g.Build(spec.InputChannels, spec.NumClasses, $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {spec.DisplayName}");
    }

    /// <summary>
    /// A Basic-block ResNet whose BN-folded convs come from <paramref name="weights"/> rather than from names (RM pruning's
    /// gated network, gates folded in); the classifier from <paramref name="sd"/>. A block with a shortcut conv from
    /// <paramref name="weights"/> gets it even where the layout has none (a gated identity is a 1x1 conv).
    /// </summary>
    public static ModelProto Lower(StateDict sd, ResNetSpec spec, FusedResNetWeights weights)
    {
        if (spec.Block != BlockKind.Basic || spec.SeChannels is not null) throw new RmException($"{spec.DisplayName}: only Basic blocks without SE take folded weights");
        // Only the classifier is read from the state dict: the convs come folded, and the gates are not weights of the graph.
        // (Not disposed: its tensors are the state dict's.)
        var head = new StateDict(sd.Source) { { "fc.weight", sd.Require("fc.weight") }, { "fc.bias", sd.Require("fc.bias") } };
        var g = new GraphBuilder(head);
        var stem = weights.Stem();
        string x = g.Relu(g.Conv(g.Input, "conv1", stem.Weights, stem.Stride), "relu");
        if (spec.StemMaxPool) x = g.MaxPool(x, "maxpool", 3, 2, 1);
        foreach (var b in spec.Blocks())
        {
            var branch = weights.Branch(b);
            string y = g.Relu(g.Conv(x, $"{b.Prefix}.conv1", branch[0].Weights, branch[0].Stride), $"{b.Prefix}.relu1");
            y = g.Conv(y, $"{b.Prefix}.conv2", branch[1].Weights, branch[1].Stride);
            string shortcut = weights.Projection(b) is { } p ? g.Conv(x, $"{b.Prefix}.downsample.0", p.Weights, p.Stride) : x;
            x = g.Relu(g.Sum(y, shortcut, $"{b.Prefix}.add"), $"{b.Prefix}.relu2");
        }
        g.Classifier(x, "fc");
        return g.Build(spec.InputChannels, spec.NumClasses, $"lowered by rmnet: {spec.DisplayName} with folded weights");
    }

    /// <summary>Stages <c>layer1</c> ... and their blocks.</summary>
    public static LoweredLayout Layout(ResNetSpec spec) => LoweredLayout.Layers(spec.Blocks().Select(b => b.Stage).ToList());
}
