using RMNet.Onnx;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;

namespace RMNet.Tests;

/// <summary>
/// The graph-level path for families whose block inputs can be negative or whose branches start with BN:
/// PyTorch's own ONNX exports of the pre-activation ResNet, MobileNetV2 and IResNet fixtures.
/// </summary>
public class OnnxFamilyTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("preact_basic_narrow", 8, 64)]
    [InlineData("preact_bottleneck_narrow", 5, 32)]
    [InlineData("mobilenet_v2_narrow", 11, 64)]
    [InlineData("iresnet18_narrow", 8, 112)]
    [InlineData("se_basic_narrow", 5, 64)]
    [InlineData("se_bottleneck_narrow", 5, 64)]
    [InlineData("timm_ecaresnet_d_narrow", 5, 64)]   // ECA gates as exported: Reshape, 1-d Conv, Sigmoid, Reshape, Expand
    public void EveryBlockBecomesPlainAndEqualsPyTorch(string name, int blocks, int size)
    {
        string input = Fixture.Path_($"onnx/{name}_opset13.onnx");
        var result = OnnxConversion.Convert(input);
        Assert.Equal(blocks, result.Blocks.Count);
        Assert.All(result.Blocks, b => Assert.True(b.Plain, $"{b.Name}: {b.Reason}"));
        using var dir = Fixture.Temp();
        var (path, vsPyTorch) = AgainstPyTorch(result.Model, name, dir);
        var g = new OnnxGraph(OnnxModelFile.Load(path).Graph, path);
        // No addition of two computed tensors remains (a bias Add of a MatMul classifier would read an initializer).
        Assert.DoesNotContain(g.Graph.Node, n => n.OpType is "Add" or "Sum" && n.Input.All(i => g.Producers.ContainsKey(i)));
        var vsOriginal = Verifier.Verify(input, path, new VerifyOptions(Samples: 2, InputSize: size));
        output.WriteLine($"{name}: {blocks} blocks plain; vs original graph rel {vsOriginal.MaxRelError:E2}, vs PyTorch rel {vsPyTorch.MaxRelError:E2}");
        Assert.True(vsOriginal.Passed, $"{vsOriginal.MaxRelError}");
        Assert.True(vsPyTorch.Passed, $"{vsPyTorch.MaxRelError}");
    }

    /// <summary>
    /// The sign split on PyTorch's exports: block inputs that may be negative are carried as relu(x) and relu(-x), so
    /// the pre-activation nets (whose only activation is ReLU) come out with Relu alone, no PRelu; IResNet keeps its own
    /// PReLUs, with slope 0 on the carried channels. Held to PyTorch's outputs.
    /// </summary>
    [Theory]
    [InlineData("preact_basic_narrow", 64, 0)]
    [InlineData("preact_bottleneck_narrow", 32, 0)]
    [InlineData("iresnet18_narrow", 112, 9)]
    public void SignSplitCarriesNegativeInputsWithRelus(string name, int size, int prelus)
    {
        string input = Fixture.Path_($"onnx/{name}_opset13.onnx");
        var prelu = OnnxConversion.Convert(input);
        var split = OnnxConversion.Convert(input, negative: Rm.NegativeInputMode.Split);
        Assert.All(split.Blocks, b => Assert.True(b.Plain, $"{b.Name}: {b.Reason}"));
        Assert.Equal(0, split.JoinsRemaining);
        Assert.Equal(prelus, split.Model.Graph.Node.Count(n => n.OpType == "PRelu"));
        // The PReLU mode carries with slope-1 channels; the split has none (its carried channels take slope 0).
        Assert.True(SlopesOfOne(prelu.Model) > 0, "the PReLU mode carries with slope-1 channels");
        Assert.Equal(0, SlopesOfOne(split.Model));
        // Twice the carried channels: the split network is larger.
        Assert.True(split.Output!.Parameters > prelu.Output!.Parameters, $"{split.Output.Parameters} vs {prelu.Output.Parameters}");
        using var dir = Fixture.Temp();
        var (path, vsPyTorch) = AgainstPyTorch(split.Model, name, dir);
        var vsOriginal = Verifier.Verify(input, path, new VerifyOptions(Samples: 2, InputSize: size));
        output.WriteLine($"{name} split: {split.Output.Parameters} parameters (prelu mode {prelu.Output.Parameters}); vs PyTorch rel {vsPyTorch.MaxRelError:E2}, vs original {vsOriginal.MaxRelError:E2}");
        Assert.True(vsPyTorch.Passed, $"{vsPyTorch.MaxRelError}");
        Assert.True(vsOriginal.Passed, $"{vsOriginal.MaxRelError}");
    }

    /// <summary>
    /// PyTorch's exports of the detector fixtures in training form: each YOLOv7 RepConv and YOLOv6 RepVGGBlock sum becomes
    /// one conv (the branch-merge pass), the rest of the detector (SiLU gates, the head's Concat) stays; held to PyTorch.
    /// </summary>
    [Theory]
    [InlineData("yolov7_repconv", 4, 6)]
    [InlineData("yolov6_repvgg", 5, 0)]
    // QARepVGG: V2's average pool becomes a depthwise conv, which the merge writes in the dense (or 4-group) conv's groups;
    // the BN after each sum then folds into the merged conv.
    [InlineData("yolov6_qarep", 6, 0)]
    public void DetectorExportsGetTheirBranchesMergedAndEqualPyTorch(string name, int merged, int gates)
    {
        string input = Fixture.Path_($"onnx/{name}_opset13.onnx");
        var result = OnnxConversion.Convert(input, inputSize: 32);
        Assert.Equal(merged, result.MergedBranches);
        Assert.Equal(0, result.JoinsRemaining);
        Assert.Equal(gates, result.Joins.Count(j => j.Kind == "gate"));
        using var dir = Fixture.Temp();
        var (_, vsPyTorch) = AgainstPyTorch(result.Model, name, dir);
        output.WriteLine($"{name}: {merged} sums merged; vs PyTorch rel {vsPyTorch.MaxRelError:E2}");
        Assert.True(vsPyTorch.MaxRelError <= 1e-5, $"{vsPyTorch.MaxRelError}");
    }

    /// <summary>The converted model written to <paramref name="dir"/> and run in ONNX Runtime on the fixture's input, against PyTorch's output.</summary>
    static (string Path, VerificationReport VsPyTorch) AgainstPyTorch(global::Onnx.ModelProto model, string name, TempDir dir)
    {
        string path = dir.File("converted.onnx");
        OnnxModelFile.Save(model, path);
        using var ort = new OnnxRuntimeRunner(path);
        var io = Fixture.Io(name);
        return (path, Equivalence.Measure(io["output"], ort.Run(io["input"]), 1e-4));
    }

    static long SlopesOfOne(global::Onnx.ModelProto model)
    {
        var g = new OnnxGraph(model.Graph, "m");
        return g.Graph.Node.Where(n => n.OpType == "PRelu")
            .Sum(n => OnnxTensors.ToTensor(g.Initializers[n.Input[1]], "m").eq(1.0).sum().item<long>());
    }
}

public class OnnxFamilyCliTests
{
    [Fact]
    public void InspectListsJoinsTheCarryPassConverts()
    {
        string input = Fixture.Path_("onnx/preact_basic_narrow_opset13.onnx");
        var (code, stdout, _) = CliHarness.Rmnet("inspect", input, "--json", "--quiet");
        Assert.Equal(0, code);
        var root = System.Text.Json.JsonDocument.Parse(stdout).RootElement;
        Assert.Equal("residual", root.GetProperty("form").GetString());
        Assert.Equal(8, root.GetProperty("joins_found").GetInt32());
        using var dir = Fixture.Temp();
        var (cc, co, ce) = CliHarness.Rmnet("convert", input, "-o", dir.File("p.onnx"), "--strict", "--json", "--quiet");
        Assert.True(cc == 0, ce);
        var converted = System.Text.Json.JsonDocument.Parse(co).RootElement;
        Assert.Equal(8, converted.GetProperty("joins_found").GetInt32());
        Assert.Equal(0, converted.GetProperty("joins_remaining").GetInt32());
        Assert.All(converted.GetProperty("joins").EnumerateArray(), j => Assert.Equal("plain", j.GetProperty("status").GetString()));
    }

    [Fact]
    public void ConvertOfAnOnnxModelTakesTheSignSplit()
    {
        using var dir = Fixture.Temp();
        string input = Fixture.Path_("onnx/preact_basic_narrow_opset13.onnx");
        var (code, _, stderr) = CliHarness.Rmnet("convert", input, "-o", dir.File("split.onnx"), "--negative-input", "split", "--strict", "--verify",
            "--input-size", "64", "--quiet");
        Assert.True(code == 0, stderr);
        var g = OnnxModelFile.Load(dir.File("split.onnx")).Graph;
        Assert.DoesNotContain(g.Node, n => n.OpType == "PRelu");
        Assert.Contains(g.Node, n => n.OpType == "Relu");
    }

    /// <summary>An ONNX original against the plain .pth or .safetensors rmnet wrote from it (was "ONNX Runtime cannot load the model").</summary>
    [Theory]
    [InlineData("plain.pth")]
    [InlineData("plain.safetensors")]
    public void AnOnnxOriginalIsVerifiedAgainstItsPlainModelFile(string file)
    {
        using var dir = Fixture.Temp();
        string input = Fixture.Path_("onnx/preact_basic_narrow_opset13.onnx");
        Assert.Equal(0, CliHarness.Rmnet("convert", input, "-o", dir.File(file), "--quiet").Code);
        var (code, stdout, stderr) = CliHarness.Rmnet("verify", input, dir.File(file), "--input-size", "64");
        Assert.True(code == 0, stderr);
        Assert.Contains("the original in ONNX Runtime, the plain model in TorchSharp", stdout);
        Assert.Contains("EQUIVALENT", stdout);
    }

    [Fact]
    public void BenchOfAFixedSizeModelRunsAtItsOwnSizeAndSaysSo()
    {
        var (code, stdout, stderr) = CliHarness.Rmnet("bench", Fixture.Path_("iresnet18_narrow.pth"), "--runtime", "torchsharp", "--size", "64",
            "--batch", "2", "--runs", "1", "--warmup", "0", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Contains("batch 2, 112x112", stdout);
        Assert.Contains("input [2, 3, 112, 112]: 112x112 fixed by the model (not --size 64)", stdout);
    }
}
