using Onnx;
using RMNet.Models;

namespace RMNet.Lowering;

/// <summary>
/// Pre-activation ResNets with the names common in CIFAR code (<see cref="PreActResNetSpec"/>): stem <c>conv1</c> (no
/// BN); blocks a = relu(<c>bn1</c>(x)), then <c>conv1</c>, <c>bn2</c>, ReLU, <c>conv2</c> (and <c>bn3</c>, ReLU, <c>conv3</c>
/// for bottlenecks), plus <c>shortcut.0</c>(a) or x, with no activation after the sum; head relu(<c>bn</c>(x)), mean, <c>linear</c>.
/// Block inputs can be negative: the carry pass takes them, in either negative-input mode.
/// </summary>
internal static class CifarPreActResNet
{
    /// <summary>The network as a graph (BatchNorm epsilon 1e-5, as the CIFAR code's).</summary>
    public static ModelProto Lower(StateDict sd, PreActResNetSpec spec)
    {
        var g = new GraphBuilder(sd);
        string x = g.Conv(g.Input, "conv1", g.ReadConv("conv1"), 1);
        foreach (var b in spec.Blocks)
        {
            string p = b.Prefix;
            string a = g.Relu(g.BatchNorm(x, $"{p}.bn1"), $"{p}.relu1");
            // Basic blocks stride in conv1, bottlenecks in conv2 (the CIFAR code's).
            string y = g.Relu(g.ConvBn(a, $"{p}.conv1", $"{p}.bn2", spec.Bottleneck ? 1 : b.Stride), $"{p}.relu2");
            if (spec.Bottleneck) y = g.Relu(g.ConvBn(y, $"{p}.conv2", $"{p}.bn3", b.Stride), $"{p}.relu3");
            y = g.Conv(y, $"{p}.conv{spec.ConvsPerBlock}", g.ReadConv($"{p}.conv{spec.ConvsPerBlock}"), 1);
            string shortcut = b.HasProjection ? g.Conv(a, $"{p}.shortcut.0", g.ReadConv($"{p}.shortcut.0"), b.Stride) : x;
            x = g.Sum(y, shortcut, $"{p}.add");
        }
        x = g.Relu(g.BatchNorm(x, "bn"), "relu");
        g.Classifier(x, "linear");
        return g.Build(3, spec.NumClasses, $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {spec.DisplayName}");
    }

    /// <summary>Stages <c>layer1</c> ... <c>layer4</c>.</summary>
    public static LoweredLayout Layout(PreActResNetSpec spec) => LoweredLayout.Layers(spec.Blocks.Select(b => b.Stage).ToList());
}
