using Google.Protobuf;
using Onnx;
using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Verification;
using TorchSharp.PyBridge;
using Xunit;

namespace RMNet.Tests;

public class ExportTests
{
    static readonly string[] AllowedOps = { "Conv", "Relu", "MaxPool", "GlobalAveragePool", "Flatten", "Reshape", "Gemm" };

    [Theory]
    [InlineData("basic_narrow")]
    [InlineData("resnext_narrow")]
    public void OnnxRunsInOnnxRuntimeAndEqualsPyTorchAndTorchSharp(string name)
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_($"{name}.pth"));
        var plain = ckpt.ToPlain();
        using var dir = Fixture.Temp();
        string path = dir.File("plain.onnx");
        ModelWriter.Save(plain, path);

        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.All(model.Graph.Node, n => Assert.Contains(n.OpType, AllowedOps));
        Assert.True(model.OpsetImport.Single().Version >= 13);
        Assert.Equal("input", model.Graph.Input.Single().Name);
        Assert.Equal("output", model.Graph.Output.Single().Name);
        var dims = model.Graph.Input[0].Type.TensorType.Shape.Dim;
        Assert.Equal(new[] { "N", "", "H", "W" }, dims.Select(d => d.DimParam));
        Assert.Equal(3, dims[1].DimValue);

        var io = Fixture.Io(name);
        using var ort = new OnnxRuntimeRunner(path);
        foreach (var x in new[] { "input", "input_odd" })   // dynamic N, H, W: two batch sizes and shapes
        {
            var onnxOut = ort.Run(io[x]);
            Assert.True(Equivalence.Measure(io[x.Replace("input", "output")], onnxOut, 1e-4).Passed);
            Assert.True(Equivalence.Measure(plain.Forward(io[x]), onnxOut, 1e-5).Passed);
        }
    }

    [Fact]
    public void SafetensorsRoundTripKeepsArchitectureAndOutputs()
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("bottleneck_narrow.pth"));
        var plain = ckpt.ToPlain();
        using var dir = Fixture.Temp();
        string path = dir.File("plain.safetensors");
        ModelWriter.Save(plain, path);
        Assert.True(PlainModelFile.IsPlain(path));
        var loaded = PlainModelFile.Load(path);
        Assert.Equal(plain.Layers.Select(l => l.Kind), loaded.Layers.Select(l => l.Kind));
        var io = Fixture.Io("bottleneck_narrow");
        var report = Equivalence.Measure(io["output"], loaded.Forward(io["input"]), 1e-4);
        Assert.True(report.Passed, $"rel {report.MaxRelError}");
    }

    [Fact]
    public void PthHoldsTheArchitectureAndAStateDictWithTheSameTensors()
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"));
        var plain = ckpt.ToPlain();
        using var dir = Fixture.Temp();
        string path = dir.File("plain.pth");
        ModelWriter.Save(plain, path);
        using var f = File.OpenRead(path);
        // PyBridge's own unpickler, as a second reader: {"rmnet.architecture": json, "state_dict": {...}}.
        var outer = PyTorchUnpickler.UnpickleStateDict(f);
        Assert.Equal(RMNet.Plain.PlainArchitecture.ToJson(plain), outer[RMNet.Plain.PlainArchitecture.MetadataKey]);
        var table = (System.Collections.IDictionary)outer["state_dict"]!;
        var expected = RMNet.Plain.PlainArchitecture.Tensors(plain);
        Assert.Equal(expected.Count, table.Count);
        foreach (var (n, t) in expected)
        {
            var read = (TorchSharp.torch.Tensor)table[n]!;
            Assert.Equal(t.shape, read.shape);
            using (TorchSharp.torch.NewDisposeScope()) Assert.Equal(0f, (read - t).abs().max().item<float>());
        }
        // verify reads it back with the structure of the original's conversion
        using var runner = ModelRunner.OpenConverted(path, ckpt);
        Assert.True(Verifier.Verify(ckpt, runner, new VerifyOptions(2, 64)).Passed);
    }

    [Fact]
    public void ConversionIsDeterministicByteForByte()
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"));
        using var dir = Fixture.Temp();
        ModelWriter.Save(ckpt.ToPlain(), dir.File("a.onnx"));
        ModelWriter.Save(ckpt.ToPlain(), dir.File("b.onnx"));
        Assert.Equal(File.ReadAllBytes(dir.File("a.onnx")), File.ReadAllBytes(dir.File("b.onnx")));
    }
}
