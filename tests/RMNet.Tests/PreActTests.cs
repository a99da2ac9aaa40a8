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

/// <summary>Pre-activation ResNets: block inputs are negative; both exact fixes of rm-math.md section 7.</summary>
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
        Assert.True(stem.min().item<float>() < -2f);
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
        {
            var (code, stdout, stderr) = Rmnet("convert", Fixture.Path_("preact_basic_narrow.pth"), "-o", dir.File($"{mode}.onnx"),
                "--negative-input", mode, "--verify", "--input-size", "32", "--json", "--quiet");
            Assert.True(code == 0, stderr);
            Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("verification").GetProperty("passed").GetBoolean());
        }
        var ops = OnnxSummary.Read(dir.File("prelu.onnx")).OpCounts;
        Assert.True(ops.ContainsKey("PRelu"));
        Assert.False(OnnxSummary.Read(dir.File("split.onnx")).OpCounts.ContainsKey("PRelu"));
        var (ic, io, _) = Rmnet("inspect", Fixture.Path_("preact_basic_narrow.pth"), "--json", "--quiet");
        Assert.Equal(0, ic);
        Assert.Equal("preact-resnet", JsonDocument.Parse(io).RootElement.GetProperty("family").GetString());
    }
}
