using System.Text.Json;
using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;
using static RMNet.Tests.CliHarness;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>float16/bfloat16 weights in every family, and float16 plain models out (--dtype float16).</summary>
public class HalfPrecisionTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Families() => new[]
    {
        "basic_narrow", "bottleneck_narrow", "resnext_narrow", "repvgg_narrow", "preact_bottleneck_narrow", "mobilenet_v2_narrow",
        "se_bottleneck_narrow", "iresnet18_narrow", "cifar_pruned",
    }.SelectMany(f => new[] { new object[] { f, ScalarType.Float16 }, new object[] { f, ScalarType.BFloat16 } });

    /// <summary>
    /// Half weights convert exactly as the same values in float32 do (the math is float64 either way): the plain
    /// networks agree to the bit, in every family.
    /// </summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void HalfWeightsConvertAsTheirFloat32Values(string fixture, ScalarType dtype)
    {
        using var sd = CheckpointReader.Read(Fixture.Path_($"{fixture}.pth"));
        var half = new StateDict("half.pth");
        var widened = new StateDict("widened.pth");
        foreach (var (key, t) in sd)
        {
            var rounded = t.is_floating_point() ? t.to_type(dtype) : t.clone();
            half.Add(key, rounded);
            widened.Add(key, rounded.is_floating_point() ? rounded.to_type(ScalarType.Float32) : rounded.clone());
        }
        using var a = SourceModels.FromStateDict(half);
        using var b = SourceModels.FromStateDict(widened);
        var x = Fixture.Io(fixture)["input"];
        using var ya = a.ToPlain().Forward(x);
        using var yb = b.ToPlain().Forward(x);
        Assert.Equal(0.0, (ya - yb).abs().max().item<float>());
    }

    [Theory]
    [InlineData("onnx")]
    [InlineData("safetensors")]
    [InlineData("pth")]
    public void Float16OutputIsHalfTheWeightsAndVerifiedAtItsOwnTolerance(string ext)
    {
        using var dir = Fixture.Temp();
        string full = dir.File($"full.{ext}"), half = dir.File($"half.{ext}");
        Assert.Equal(0, Rmnet("convert", Fixture.Path_("bottleneck_narrow.pth"), "-o", full, "--quiet").Code);
        var report = ConvertVerified(Fixture.Path_("bottleneck_narrow.pth"), half, 64, "--dtype", "float16", "--samples", "8");
        Assert.Equal("float16", report.GetProperty("dtype").GetString());
        var v = report.GetProperty("verification");
        Assert.Equal(1e-2, v.GetProperty("tolerance").GetDouble());
        double rel = v.GetProperty("max_rel_error").GetDouble();
        output.WriteLine($"{ext}: float16 max rel error {rel:E2}, {new FileInfo(half).Length} bytes against {new FileInfo(full).Length}");
        Assert.InRange(rel, 1e-5, 2e-3);   // float16's rounding shows, and stays small
        Assert.InRange(new FileInfo(half).Length, 0.45 * new FileInfo(full).Length, 0.6 * new FileInfo(full).Length);
        // The weights are float16 in the file; ONNX keeps a float32 input and output.
        if (ext == "onnx")
        {
            var model = OnnxModelFile.Load(half);
            Assert.All(model.Graph.Initializer.Where(t => t.Dims.Count > 1), t => Assert.Equal((int)global::Onnx.TensorProto.Types.DataType.Float16, t.DataType));
            Assert.Equal((int)global::Onnx.TensorProto.Types.DataType.Float, model.Graph.Input[0].Type.TensorType.ElemType);
            Assert.Equal((int)global::Onnx.TensorProto.Types.DataType.Float, model.Graph.Output[0].Type.TensorType.ElemType);
            using var ort = new OnnxRuntimeRunner(half);
            var io = Fixture.Io("bottleneck_narrow");
            Assert.True(Equivalence.Measure(io["output"], ort.Run(io["input"]), 2e-3).Passed);
        }
        else
        {
            using var sd = CheckpointReader.Read(half);
            Assert.All(sd.Values, t => Assert.Equal(ScalarType.Float16, t.dtype));
            Assert.Equal("plain", Inspect(half).GetProperty("form").GetString());
        }
    }

    [Fact]
    public void Float16IsHeldToAToleranceGivenExplicitly()
    {
        using var dir = Fixture.Temp();
        string half = dir.File("half.onnx");
        var (code, stdout, stderr) = Rmnet("convert", Fixture.Path_("bottleneck_narrow.pth"), "-o", half, "--dtype", "float16", "--verify",
            "--tolerance", "1e-6", "--input-size", "64", "--quiet", "--json");
        Assert.Equal(1, code);
        Assert.Contains("converted model differs from the original", stderr);
        Assert.Equal(1e-6, JsonDocument.Parse(stdout).RootElement.GetProperty("verification").GetProperty("tolerance").GetDouble());
        Assert.False(File.Exists(half));
    }

    [Fact]
    public void Float16OfAnOnnxModelIsRefused()
    {
        using var dir = Fixture.Temp();
        var (code, _, stderr) = Rmnet("convert", Fixture.Path_("onnx/basic_narrow_opset13.onnx"), "-o", dir.File("h.onnx"), "--dtype", "float16");
        Assert.Equal(2, code);
        Assert.Equal($"rmnet: error: {Fixture.Path_("onnx/basic_narrow_opset13.onnx")}: --dtype float16 applies to checkpoints; an ONNX model keeps its own weight types", stderr.Trim());
    }
}
