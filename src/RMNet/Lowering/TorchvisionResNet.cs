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

    /// <summary>Stages <c>layer1</c> ... and their blocks.</summary>
    public static LoweredLayout Layout(ResNetSpec spec) => LoweredLayout.Of(spec.Layers, i => $"layer{i + 1}");
}
