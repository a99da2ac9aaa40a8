using Onnx;
using RMNet.Onnx;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;

namespace RMNet.Tests;

/// <summary>Graph-level RM on ONNX files: PyTorch exports at four opsets and hand-edited quirk graphs.</summary>
public class OnnxConversionTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Models() => new[]
    {
        "basic_narrow_opset9", "basic_narrow_opset11", "basic_narrow_opset13", "basic_narrow_opset17",
        "resnext_narrow_opset9", "resnext_narrow_opset11", "resnext_narrow_opset13", "resnext_narrow_opset17",
        "quirk_bn_opset7_inputs_list_initializers", "quirk_sum_swapped", "quirk_constants_fixed_batch_same_upper",
        "quirk_reducemean_reshape_matmul", "quirk_same_lower_valid", "quirk_explicit_pad_nodes", "quirk_same_upper_stride2_fixed_size", "external/basic_external",
    }.Select(n => new object[] { n });

    [Theory]
    [MemberData(nameof(Models))]
    public void EveryBlockBecomesPlainAndOutputsMatchInOnnxRuntime(string name)
    {
        string input = Fixture.Path_($"onnx/{name}.onnx");
        var result = OnnxConversion.Convert(input);
        Assert.Equal(5, result.Blocks.Count);
        Assert.All(result.Blocks, b => Assert.True(b.Plain, $"{b.Name}: {b.Reason}"));
        using var dir = Fixture.Temp();
        string path = dir.File("plain.onnx");
        OnnxModelFile.Save(result.Model, path);

        var original = OnnxModelFile.Load(input);
        var converted = OnnxModelFile.Load(path);
        // Nothing that feeds a Relu is an addition any more; inputs, outputs and metadata are kept.
        var g = new OnnxGraph(converted.Graph, path);
        Assert.DoesNotContain(converted.Graph.Node, n => n.OpType is "Add" or "Sum" && g.ConsumersOf(n.Output[0]).Any(c => c.OpType == "Relu"));
        Assert.DoesNotContain(converted.Graph.Node, n => n.OpType == "BatchNormalization");
        Assert.Equal(original.Graph.Input.Where(i => i.Name == "input").Select(i => i.ToString()), converted.Graph.Input.Where(i => i.Name == "input").Select(i => i.ToString()));
        Assert.Equal(original.Graph.Output.Select(o => o.ToString()), converted.Graph.Output.Select(o => o.ToString()));
        Assert.Equal(original.MetadataProps, converted.MetadataProps);
        Assert.Equal(original.OpsetImport.Single().Version, converted.OpsetImport.Single().Version);
        Assert.Equal("rmnet", converted.ProducerName);
        Assert.Contains("5 of 5 residual joins made plain", converted.DocString);
        Assert.Equal((5, 0), (result.JoinsFound, result.JoinsRemaining));

        var report = Verifier.Verify(input, path, new VerifyOptions(Samples: 3, InputSize: 64));
        output.WriteLine($"{name}: rel {report.MaxRelError:E2} abs {report.MaxAbsError:E2} top1 {report.Top1Agreement}");
        Assert.True(report.Passed, $"rel {report.MaxRelError}");
        Assert.Equal(1.0, report.Top1Agreement);
    }
}

public class OnnxExternalDataTests
{
    [Fact]
    public void ExternalDataIsWrittenReadBackAndRunsInOnnxRuntime()
    {
        var result = OnnxConversion.Convert(Fixture.Path_("onnx/basic_narrow_opset13.onnx"));
        using var dir = Fixture.Temp();
        string path = dir.File("plain.onnx");
        OnnxModelFile.Save(result.Model, path, externalDataThreshold: 1000);   // force external data
        Assert.True(File.Exists(path + ".data"));
        Assert.True(new FileInfo(path).Length < 50_000);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.Contains(model.Graph.Initializer, t => t.DataLocation == TensorProto.Types.DataLocation.External);
        var report = Verifier.Verify(Fixture.Path_("onnx/basic_narrow_opset13.onnx"), path, new VerifyOptions(2, 40));
        Assert.True(report.Passed, $"rel {report.MaxRelError}");
        // And rmnet reads its own external data back.
        Assert.Equal(result.Model.Graph.Initializer.Count, OnnxModelFile.Load(path).Graph.Initializer.Count);
    }

    [Fact]
    public void ExternalDataOutsideTheModelDirectoryIsRefused()
    {
        using var dir = Fixture.Temp();
        var model = OnnxModelFile.Load(Fixture.Path_("onnx/basic_narrow_opset13.onnx"));
        var t = model.Graph.Initializer[0];
        t.RawData = Google.Protobuf.ByteString.Empty;
        t.DataLocation = TensorProto.Types.DataLocation.External;
        t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "../../etc/passwd" });
        string path = dir.File("escape.onnx");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));
        var e = Assert.Throws<ModelInputException>(() => OnnxModelFile.Load(path));
        Assert.Contains("outside the model's directory", e.Message);
    }
}

public class OnnxStaticSizeTests
{
    [Fact]
    public void SameStrideTwoWithoutAFixedSizeIsKeptAndReported()
    {
        var model = OnnxModelFile.Load(Fixture.Path_("onnx/quirk_same_upper_stride2_fixed_size.onnx"));
        foreach (var i in new[] { 2, 3 }) model.Graph.Input[0].Type.TensorType.Shape.Dim[i].DimParam = i == 2 ? "H" : "W";
        using var dir = Fixture.Temp();
        string path = dir.File("dynamic.onnx");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));
        var result = OnnxConversion.Convert(path);
        Assert.Equal(5, result.Blocks.Count);
        Assert.Equal(2, result.Blocks.Count(b => b.Plain));   // the three stride-2 blocks need the input size
        Assert.All(result.Blocks.Where(b => !b.Plain), b => Assert.Contains("depends on the input size", b.Reason));
    }
}
