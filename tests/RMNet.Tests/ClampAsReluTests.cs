using RMNet.Plain;
using Xunit;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>Per-channel clamps rewritten as ReLUs: the same function, for every kind of bound the rewrite accepts.</summary>
public class ClampAsReluTests
{
    static PlainModel Model(double[] lower, double[] upper, int groups)
    {
        var gen = manual_seed(9);
        long c = lower.Length;
        return new PlainModel(new PlainLayer[]
        {
            new ConvLayer(randn(new[] { c, 3, 3, 3 }, generator: gen) * 2, randn(c, generator: gen), 1, 1, Padding2d.All(1), 1),
            new ClampLayer(tensor(lower).to_type(ScalarType.Float32), tensor(upper).to_type(ScalarType.Float32)),
            new ConvLayer(randn(new[] { c, c / groups, 3, 3 }, generator: gen), randn(c, generator: gen), 2, 2, Padding2d.All(1), groups),
            new ClampLayer(tensor(lower).to_type(ScalarType.Float32), tensor(upper).to_type(ScalarType.Float32)),
            new GlobalAvgPoolLayer(), new FlattenLayer(),
            new LinearLayer(randn(new[] { 5L, c }, generator: gen), randn(5, generator: gen)),
        });
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]   // depthwise: groups stay, each group gets R inputs and R outputs
    public void EveryBoundKindGivesTheSameOutputs(int groups)
    {
        double inf = double.PositiveInfinity;
        // ReLU6, ReLU, a carried channel (no bounds), and an upper bound only.
        var model = Model(new[] { 0, 0, -inf, -inf }, new[] { 6, inf, inf, 0.5 }, groups);
        var rewritten = ClampAsRelu.Rewrite(model);
        Assert.DoesNotContain(rewritten.Layers, l => l is ClampLayer);
        Assert.Equal(2, rewritten.Layers.Count(l => l is ReluLayer));
        var x = randn(new[] { 2L, 3, 9, 9 }, generator: manual_seed(1)) * 4;
        var expected = model.Forward(x);
        var actual = rewritten.Forward(x);
        Assert.True(expected.abs().max().item<float>() > 1, "the clamps must be active somewhere");
        double rel = (actual - expected).abs().max().item<float>() / expected.abs().max().item<float>();
        Assert.True(rel < 1e-5, $"rel {rel}");
    }

    [Fact]
    public void ANonZeroLowerBoundIsRefused()
    {
        var model = Model(new[] { 0.0, -1 }, new[] { 6.0, 6 }, 1);
        var e = Assert.Throws<RmException>(() => ClampAsRelu.Rewrite(model));
        Assert.Contains("clamped below at -1", e.Message);
    }
}
