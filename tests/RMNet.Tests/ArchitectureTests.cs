using RMNet.Blocks;
using RMNet.Models;
using RMNet.Rm;
using Xunit;

namespace RMNet.Tests;

public class ArchitectureTests
{
    public static IEnumerable<object[]> Names() => ResNetSpec.KnownNames.Select(n => new object[] { n });

    /// <summary>The module's state-dict names and shapes are exactly those of the layout (which are torchvision's).</summary>
    [Theory]
    [MemberData(nameof(Names))]
    public void ModuleStateDictMatchesLayout(string name)
    {
        var spec = ResNetSpec.Named(name, 21);
        using var module = new ResNet(spec);
        var actual = module.state_dict().Where(kv => !kv.Key.EndsWith("num_batches_tracked"))
            .ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var expected = spec.ExpectedParameters().ToList();
        Assert.Equal(expected.Count, actual.Count);
        foreach (var (key, shape) in expected)
            Assert.Equal(shape, actual[key]);
    }

    [Theory]
    [InlineData("resnet18", 11_689_512)]      // torchvision's documented parameter counts
    [InlineData("resnet50", 25_557_032)]
    [InlineData("resnext50_32x4d", 25_028_904)]
    [InlineData("wide_resnet50_2", 68_883_240)]
    [InlineData("resnet152", 60_192_808)]
    public void ParameterCountsMatchTorchvision(string name, long count) =>
        Assert.Equal(count, ResNetCost.Parameters(ResNetSpec.Named(name)));

    [Theory]
    [InlineData("resnet18", RmMode.Dense, 20.2)]   // docs/design.md section 9
    [InlineData("resnet18", RmMode.Grouped, 20.2)]
    [InlineData("resnet34", RmMode.Dense, 40.4)]
    [InlineData("resnet50", RmMode.Dense, 277.3)]
    [InlineData("resnet50", RmMode.Grouped, 95.0)]
    [InlineData("resnext50_32x4d", RmMode.Grouped, 57.9)]
    public void PlainParameterCountsMatchTheMathNotes(string name, RmMode mode, double millions)
    {
        using var sd = RandomResNet.Create(ResNetSpec.Named(name), 5);
        using var ckpt = ResNetCheckpoint.FromStateDict(sd);
        Assert.Equal(millions, Math.Round(ckpt.ToPlain(mode).ParameterCount / 1e6, 1));
    }

    [Fact]
    public void Resnet50MacsMatchTorchvision() =>
        // torchvision documents 4.09 GFLOPS (multiply-adds) for ResNet-50 at 224x224.
        Assert.Equal(4.09, Math.Round(ResNetCost.MultiplyAccumulates(ResNetSpec.Named("resnet50"), 224, 224) / 1e9, 2));
}
