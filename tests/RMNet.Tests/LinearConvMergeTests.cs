using RMNet.Weights;
using Xunit;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>The one merge decision both engines make (docs/design.md section 7), and the merge itself.</summary>
public class LinearConvMergeTests
{
    [Theory]
    // MobileNetV2: a 144 -> 24 projection, then a 24 -> 144 expansion: merged 144 x 144, apart 24 x 144 + 144 x 24.
    [InlineData(24, 144, 1, 1, 144, false)]
    // Pre-activation / IResNet entry [x ; bn1(x)] after a block's 3x3 merge conv (64 carried + 64 features in).
    [InlineData(64, 128, 3, 3, 128, false)]
    // The same entry after a 3-channel 3x3 stem: 128 x 27 merged against 64 x 27 + 128 x 64 apart; not with 8 channels.
    [InlineData(64, 3, 3, 3, 128, true)]
    [InlineData(8, 3, 3, 3, 16, false)]
    // A BN alone (as many outputs as the conv has) always folds.
    [InlineData(64, 128, 3, 3, 64, true)]
    public void MergesOnlyWhereTheMergedConvCostsNoMore(long out1, long in1, long kh, long kw, long out2, bool pays) =>
        Assert.Equal(pays, LinearConvMerge.Pays(out1, in1, kh, kw, 1, out2));

    [Fact]
    public void TheMergedConvEqualsThePairBordersIncluded()
    {
        manual_seed(20);
        var x = randn(2, 5, 9, 7, dtype: ScalarType.Float64);
        var w1 = randn(6, 5, 3, 3, dtype: ScalarType.Float64);
        var b1 = randn(6, dtype: ScalarType.Float64);
        var w2 = randn(4, 6, 1, 1, dtype: ScalarType.Float64);
        var b2 = randn(4, dtype: ScalarType.Float64);
        var pair = nn.functional.conv2d(nn.functional.conv2d(x, w1, b1, strides: new long[] { 2, 2 }, padding: new long[] { 1, 1 }), w2, b2);
        var (w, b) = LinearConvMerge.Merge(w1, b1, w2, b2);
        var merged = nn.functional.conv2d(x, w, b, strides: new long[] { 2, 2 }, padding: new long[] { 1, 1 });
        Assert.True((pair - merged).abs().max().item<double>() < 1e-12);
    }
}
