using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Models;

/// <summary>
/// Seeded random weights for any layout, with non-trivial BatchNorm statistics (so fusion mistakes show):
/// for the demo, samples and property tests. Same seed, same weights.
/// </summary>
public static class RandomResNet
{
    /// <summary>A state dict with torchvision names for <paramref name="spec"/>.</summary>
    public static StateDict Create(ResNetSpec spec, long seed, string source = "random")
    {
        var g = new Generator((ulong)seed);
        var sd = new StateDict(source);
        foreach (var (key, shape) in spec.ExpectedParameters())
        {
            Tensor t;
            if (key.EndsWith("running_var", StringComparison.Ordinal)) t = rand(shape, generator: g) * 2.0 + 0.2;
            else if (key.EndsWith("running_mean", StringComparison.Ordinal)) t = randn(shape, generator: g) * 0.5;
            else if (shape.Length == 1 && key != "fc.bias") t = key.EndsWith("weight", StringComparison.Ordinal)
                ? rand(shape, generator: g) * 1.5 + 0.25 : randn(shape, generator: g) * 0.3;
            else if (key == "fc.bias") t = randn(shape, generator: g) * 0.1;
            else
            {
                long fanIn = shape.Skip(1).Aggregate(1L, (a, b) => a * b);
                t = randn(shape, generator: g) * Math.Sqrt(2.0 / fanIn);
            }
            sd.Add(key, t);
        }
        return sd;
    }
}
