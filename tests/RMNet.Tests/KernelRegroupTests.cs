using RMNet.Weights;
using Xunit;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary><see cref="Kernels.Regroup"/>: a conv in fine groups written in coarser groups computes the same.</summary>
public class KernelRegroupTests
{
    [Theory]
    [InlineData(16, 1)]   // depthwise as dense (QARepVGGBlockV2's pool beside a dense 3x3 conv)
    [InlineData(16, 4)]   // depthwise as 4 groups (beside a grouped conv)
    [InlineData(8, 2)]
    [InlineData(4, 4)]
    public void ARegroupedKernelGivesTheSameOutput(int fromGroups, int toGroups)
    {
        var gen = new TorchSharp.torch.Generator(7);
        var kernel = randn(new long[] { 16, 16 / fromGroups, 3, 3 }, dtype: ScalarType.Float64, generator: gen);
        var x = randn(new long[] { 2, 16, 6, 6 }, dtype: ScalarType.Float64, generator: gen);
        var coarse = Kernels.Regroup(kernel, fromGroups, toGroups);
        Assert.Equal(new long[] { 16, 16 / toGroups, 3, 3 }, coarse.shape);
        var expected = nn.functional.conv2d(x, kernel, padding: new long[] { 1, 1 }, groups: fromGroups);
        var actual = nn.functional.conv2d(x, coarse, padding: new long[] { 1, 1 }, groups: toGroups);
        Assert.True((expected - actual).abs().max().item<double>() < 1e-12);
        Assert.Throws<ArgumentException>(() => Kernels.Regroup(kernel, fromGroups, fromGroups * 2 + 1));
    }
}
