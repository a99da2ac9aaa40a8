using Onnx;
using RMNet.Models;

namespace RMNet.Lowering;

/// <summary>
/// InsightFace's IResNet with arcface_torch's names (<see cref="IResNetSpec"/>): stem <c>conv1</c>, <c>bn1</c>,
/// <c>prelu</c>; blocks <c>bn1</c>, <c>conv1</c>, <c>bn2</c>, <c>prelu</c>, <c>conv2</c> (the stride), <c>bn3</c>, plus
/// <c>downsample.0/.1</c>(x) or x, with no activation after the sum; head <c>bn2</c>, flatten, <c>fc</c>, BatchNorm1d
/// <c>features</c>: the embedding. Block inputs can be negative (the carry pass takes them); the flatten fixes the input size.
/// </summary>
internal static class ArcFaceIResNet
{
    /// <summary>The network as a graph (BatchNorm epsilon 1e-5; arcface_torch's BatchNorm2d use that default).</summary>
    public static ModelProto Lower(StateDict sd, IResNetSpec spec)
    {
        var g = new GraphBuilder(sd);
        string x = g.PRelu(g.ConvBn(g.Input, "conv1", "bn1", 1), "prelu");
        foreach (var b in spec.Blocks)
        {
            string p = b.Prefix;
            string y = g.PRelu(g.ConvBn(g.BatchNorm(x, $"{p}.bn1"), $"{p}.conv1", $"{p}.bn2", 1), $"{p}.prelu");
            y = g.ConvBn(y, $"{p}.conv2", $"{p}.bn3", b.Stride);
            string shortcut = b.HasProjection ? g.ConvBn(x, $"{p}.downsample.0", $"{p}.downsample.1", b.Stride) : x;
            x = g.Sum(y, shortcut, $"{p}.add");
        }
        string features = g.Linear(g.Flatten(g.BatchNorm(x, "bn2"), "flatten"), "fc");
        g.BatchNorm(features, "features", output: Onnx.OnnxExporter.OutputName);
        return g.Build(3, spec.NumFeatures, $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {spec.Name ?? "IResNet"}");
    }

    /// <summary>Stages <c>layer1</c> ... <c>layer4</c>.</summary>
    public static LoweredLayout Layout(IResNetSpec spec) => LoweredLayout.Layers(spec.Blocks.Select(b => b.Stage).ToList());
}
