using Onnx;
using RMNet.Models;

namespace RMNet.Lowering;

/// <summary>
/// torchvision's MobileNetV2 (<see cref="MobileNetV2Spec"/>): stem <c>features.0.0</c> (3x3/2) + BN <c>.1</c> + ReLU6;
/// inverted residual blocks <c>features.i.conv</c>: the 1x1 expansion <c>0.0</c>/<c>0.1</c> + ReLU6 (where the expand
/// ratio is above 1), the depthwise 3x3 + BN + ReLU6, the linear 1x1 projection + BN, plus x where stride and channels
/// allow; the last 1x1 conv <c>features.N.0/.1</c> + ReLU6; global pool and <c>classifier.1</c>. A block input is a
/// linear projection's output (negative or above 6): the carry pass takes it with unbounded clamps on the carried channels.
/// </summary>
internal static class TorchvisionMobileNetV2
{
    /// <summary>The network as a graph (BatchNorm epsilon 1e-5, torchvision's).</summary>
    public static ModelProto Lower(StateDict sd, MobileNetV2Spec spec)
    {
        var g = new GraphBuilder(sd);
        string x = g.Relu6(g.ConvBn(g.Input, "features.0.0", "features.0.1", 2), "features.0.2");
        foreach (var b in spec.Blocks)
        {
            string p = b.Prefix;
            int unit = 0;   // the index of the next Conv2dNormActivation (or the projection) inside conv
            string y = x;
            if (b.Expand)
            {
                y = g.Relu6(g.ConvBn(y, $"{p}.0.0", $"{p}.0.1", 1), $"{p}.0.2");
                unit = 1;
            }
            y = g.Relu6(g.ConvBn(y, $"{p}.{unit}.0", $"{p}.{unit}.1", b.Stride, groups: b.Hidden), $"{p}.{unit}.2");
            y = g.ConvBn(y, $"{p}.{unit + 1}", $"{p}.{unit + 2}", 1);
            x = b.Residual ? g.Sum(y, x, $"features.{b.Index}.add") : y;
        }
        x = g.Relu6(g.ConvBn(x, $"features.{spec.LastIndex}.0", $"features.{spec.LastIndex}.1", 1), $"features.{spec.LastIndex}.2");
        g.Classifier(x, "classifier.1");
        return g.Build(3, spec.NumClasses, $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': torchvision MobileNetV2");
    }

    /// <summary>The stages the family's costs are given in: <c>stem</c> (<c>features.0</c>), <c>blocks</c> (every inverted residual block), <c>head</c> (the last conv and the classifier).</summary>
    public static LoweredLayout Layout(MobileNetV2Spec spec)
    {
        var prefixes = spec.Blocks.Select(b => $"features.{b.Index}").ToList();
        return new LoweredLayout(prefixes, spec.Blocks.Count) { StageNames = prefixes.ToDictionary(p => p, _ => "blocks") };
    }
}
