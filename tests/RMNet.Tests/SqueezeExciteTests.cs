using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Plain;
using RMNet.Rm;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;

namespace RMNet.Tests;

/// <summary>SE-ResNets (timm names): the addition removed, the SE gate applied to the block's own channels only.</summary>
public class SqueezeExciteTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases() => Fixture.Cases(new[] { "se_basic_narrow", "se_bottleneck_narrow" }, RmMode.Grouped, RmMode.Dense);

    [Theory]
    [MemberData(nameof(Cases))]
    public void PlainMatchesPyTorchInTorchSharpAndOnnxRuntime(string name, RmMode mode)
    {
        using var model = Assert.IsType<ResNetCheckpoint>(SourceModels.Load(Fixture.Path_($"{name}.pth")));
        Assert.NotNull(model.Spec.SeChannels);
        var plain = FamilyChecks.AssertMatchesPyTorch(model, name, output, $"{name} {mode}", mode);
        Assert.Equal(model.BlockCount, plain.Layers.OfType<SeLayer>().Count());
        // The gate covers exactly the block's own channels; the reserved input before them passes untouched.
        Assert.All(plain.Layers.OfType<SeLayer>(), s => Assert.True(s.Offset > 0));
    }

    [Fact]
    public void SafetensorsRoundTripKeepsTheSeLayers()
    {
        using var model = SourceModels.Load(Fixture.Path_("se_bottleneck_narrow.pth"));
        using var dir = Fixture.Temp();
        ModelWriter.Save(model.ToPlain(), dir.File("p.safetensors"));
        var loaded = PlainModelFile.Load(dir.File("p.safetensors"));
        var io = Fixture.Io("se_bottleneck_narrow");
        Assert.True(Equivalence.Measure(io["output"], loaded.Forward(io["input"]), 1e-4).Passed);
    }
}
