using System.Text.Json;
using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Plain;
using RMNet.Rm;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

/// <summary>Pre-activation ResNets: block inputs are negative; both exact fixes of docs/design.md section 7.</summary>
public class PreActTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases() => Fixture.Cases(new[] { "preact_basic_narrow", "preact_bottleneck_narrow" }, NegativeInputMode.PRelu, NegativeInputMode.Split);

    [Theory]
    [MemberData(nameof(Cases))]
    public void PlainMatchesPyTorchInTorchSharpAndOnnxRuntime(string name, NegativeInputMode mode)
    {
        using var model = SourceModels.Load(Fixture.Path_($"{name}.pth"), negative: mode);
        Assert.Equal("preact-resnet", model.Family);
        var plain = FamilyChecks.AssertMatchesPyTorch(model, name, output, $"{name} {mode}");
        // The sign split needs no PReLU at all.
        Assert.Equal(mode == NegativeInputMode.Split, !plain.Layers.OfType<PReluLayer>().Any());
    }

    [Fact]
    public void BlockInputsAreStronglyNegative()
    {
        // The first block reads the stem conv's output directly: a plain ReLU on it would lose this.
        using var model = (PreActCheckpoint)SourceModels.Load(Fixture.Path_("preact_basic_narrow.pth"));
        var stem = TorchSharp.torch.nn.functional.conv2d(Fixture.Io("preact_basic_narrow")["input"], model.Weights["conv1.weight"], padding: new long[] { 1, 1 });
        using (TorchSharp.torch.NewDisposeScope()) Assert.True(stem.min().item<float>() < -2f);
    }

    [Fact]
    public void LayoutIsDetectedFromTheCifarNames()
    {
        using var model = (PreActCheckpoint)SourceModels.Load(Fixture.Path_("preact_bottleneck_narrow.pth"));
        Assert.True(model.Spec.Bottleneck);
        Assert.Equal(5, model.Spec.Blocks.Count);
        Assert.Equal(new[] { true, true, false, true, true }, model.Spec.Blocks.Select(b => b.HasProjection));
        Assert.Equal(10, model.NumClasses);
    }

    [Fact]
    public void CliConvertsWithEitherNegativeInputMode()
    {
        using var dir = Fixture.Temp();
        foreach (var mode in new[] { "prelu", "split" })
            CliHarness.ConvertVerified(Fixture.Path_("preact_basic_narrow.pth"), dir.File($"{mode}.onnx"), 32, "--negative-input", mode);
        var ops = OnnxSummary.Read(dir.File("prelu.onnx")).OpCounts;
        Assert.True(ops.ContainsKey("PRelu"));
        Assert.False(OnnxSummary.Read(dir.File("split.onnx")).OpCounts.ContainsKey("PRelu"));
        Assert.Equal("preact-resnet", CliHarness.Inspect(Fixture.Path_("preact_basic_narrow.pth")).GetProperty("family").GetString());
    }
}
