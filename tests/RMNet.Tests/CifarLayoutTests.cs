using System.Text.Json;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Verification;
using Xunit;

namespace RMNet.Tests;

/// <summary>CIFAR-style layouts (3x3 stem, three stages), grayscale input and channel-pruned block widths, against PyTorch.</summary>
public class CifarLayoutTests
{
    [Fact]
    public void CifarCheckpointIsDetectedWithItsStemChannelsAndStages()
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("cifar_narrow.pth"));
        Assert.Equal(StemKind.Cifar, ckpt.Spec.Stem);
        Assert.Equal(1, ckpt.Spec.InputChannels);
        Assert.Equal(new[] { 2, 1, 1 }, ckpt.Spec.Layers);
        Assert.Null(ckpt.Spec.BlockWidths);
        Assert.Equal(1, ckpt.InputChannels);
    }

    [Fact]
    public void PrunedBlockWidthsAreReadFromTheKernels()
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("cifar_pruned.pth"));
        // make_fixtures.py narrowed layer1.0 to 5, layer1.1 to 3, layer2.0 to 11, layer3.0 to 7 inner channels.
        Assert.Equal(new[] { 5, 3, 11, 7 }, ckpt.Spec.BlockWidths);
        Assert.Equal(new[] { 8, 16, 32 }, ckpt.Spec.Planes);
    }

    [Fact]
    public void NamedCifarLayoutsHavePyTorchsParameterCounts()
    {
        var expected = JsonSerializer.Deserialize<Dictionary<string, long>>(File.ReadAllText(Fixture.Path_("cifar_layouts.json")))!;
        Assert.Equal(5, expected.Count);
        foreach (var (name, count) in expected)
            Assert.Equal(count, ResNetCost.Parameters(ResNetSpec.Named(name, 10)));
    }

    [Fact]
    public void NamedResnet20MatchesTheFixturesNamesAndDetection()
    {
        // The same layout rebuilt from its name at the fixture's widths would differ; the named one must round-trip.
        var spec = ResNetSpec.Named("resnet20", 10, 1);
        var sd = RandomResNet.Create(spec, 3);
        using var ckpt = ResNetCheckpoint.FromStateDict(sd);
        Assert.Equal("resnet20", ckpt.Spec.Name);
        Assert.Equal(StemKind.Cifar, ckpt.Spec.Stem);
        Assert.Equal(19, ckpt.ToPlain(Rm.RmMode.Dense).Convs.Count());
    }

    [Theory]
    [InlineData("cifar_narrow")]
    [InlineData("cifar_pruned")]
    public void ResidualOnnxExportMatchesPyTorch(string name)
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_($"{name}.pth"));
        using var dir = Fixture.Temp();
        OnnxModelFile.Save(RMNet.Lowering.TorchvisionResNet.Lower(ckpt.Weights, ckpt.Spec), dir.File("r.onnx"));
        using var ort = new OnnxRuntimeRunner(dir.File("r.onnx"));
        var io = Fixture.Io(name);
        foreach (var (x, y) in new[] { ("input", "output"), ("input_odd", "output_odd") })
        {
            var report = Equivalence.Measure(io[y], ort.Run(io[x]), 1e-5);
            Assert.True(report.Passed, $"{name}/{x}: max rel error {report.MaxRelError}");
        }
    }
}
