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
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>InsightFace IResNet (arcface_torch names): exact on the embedding, block inputs strongly negative.</summary>
public class IResNetTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases() => Fixture.Cases(new[] { "iresnet18_narrow", "iresnet50_narrow" }, NegativeInputMode.PRelu, NegativeInputMode.Split);

    [Theory]
    [MemberData(nameof(Cases))]
    public void EmbeddingMatchesPyTorchInTorchSharpAndOnnxRuntime(string name, NegativeInputMode mode)
    {
        using var model = Assert.IsType<IResNetCheckpoint>(SourceModels.Load(Fixture.Path_($"{name}.pth"), negative: mode));
        Assert.Equal(32, model.NumClasses);
        Assert.Equal(112, model.Spec.InputSize);
        var plain = FamilyChecks.AssertMatchesPyTorch(model, name, output, $"{name} {mode}");
        output.WriteLine($"plain parameters {plain.ParameterCount}");
    }

    [Fact]
    public void BlockInputsAreStronglyNegativeAndCarriedExactly()
    {
        using var model = Assert.IsType<IResNetCheckpoint>(SourceModels.Load(Fixture.Path_("iresnet18_narrow.pth")));
        var plain = model.ToPlain();
        // Layers: stem conv, PReLU, entry (1x1), conv1', PReLU, then block 1's conv2' emitting [x ; bn1(x)] for block 2.
        var h = new PlainModel(plain.Layers.Take(6).ToList()).Forward(Fixture.Io("iresnet18_narrow")["input"]);
        long c = model.Spec.Blocks[1].InChannels;
        float min;
        using (NewDisposeScope()) min = h[TensorIndex.Colon, TensorIndex.Slice(0, c)].min().item<float>();
        output.WriteLine($"layer1.1 input carried in the plain network: min {min:F2}");
        Assert.True(min < -2f);
    }

    [Fact]
    public void CliRecognisesConvertsAndVerifiesTheEmbedding()
    {
        using var dir = Fixture.Temp();
        var root = CliHarness.ConvertVerified(Fixture.Path_("iresnet50_narrow.pth"), dir.File("face.onnx"), 112);
        Assert.Equal(24, root.GetProperty("blocks").GetInt32());
        // rmnet verify on the embedding, from a plain safetensors file; the head's fixed 112x112 input is used
        // whatever --input-size says.
        Assert.Equal(0, Rmnet("convert", Fixture.Path_("iresnet50_narrow.pth"), "-o", dir.File("face.safetensors"), "--quiet").Code);
        var (vc, vo, ve) = Rmnet("verify", Fixture.Path_("iresnet50_narrow.pth"), dir.File("face.safetensors"), "--samples", "3", "--json", "--quiet");
        Assert.True(vc == 0, ve);
        Assert.True(JsonDocument.Parse(vo).RootElement.GetProperty("verification").GetProperty("max_rel_error").GetDouble() < 1e-4);
        var r = CliHarness.Inspect(Fixture.Path_("iresnet50_narrow.pth"));
        Assert.Equal("iresnet", r.GetProperty("family").GetString());
        Assert.StartsWith("iresnet50", r.GetProperty("architecture").GetString());
    }

    [Fact]
    public void CostsAreReportedAtTheFixedInputSizeTheyWereComputedAt()
    {
        using var dir = Fixture.Temp();
        var (code, stdout, stderr) = Rmnet("convert", Fixture.Path_("iresnet18_narrow.pth"), "-o", dir.File("face.onnx"), "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Contains("MACs @112", stdout);
        Assert.DoesNotContain("@224", stdout);
        var (_, json, _) = Rmnet("convert", Fixture.Path_("iresnet18_narrow.pth"), "-o", dir.File("face.onnx"), "--force", "--quiet", "--json");
        var root = JsonDocument.Parse(json).RootElement;
        Assert.Equal(112, root.GetProperty("original").GetProperty("input_size").GetInt32());
        Assert.Equal(112, root.GetProperty("converted").GetProperty("input_size").GetInt32());
        var (_, inspect, _) = Rmnet("inspect", Fixture.Path_("iresnet18_narrow.pth"));
        Assert.Contains("MACs @112", inspect);
        Assert.DoesNotContain("@224", inspect);
    }
}
