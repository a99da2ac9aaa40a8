using Onnx;
using RMNet.Cli;
using RMNet.Onnx;
using Xunit;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// A model that loads but fails in ONNX Runtime on an input its declared shape accepts (PyTorch's dynamic-axes export of
/// DBB writes its traced size into an Expand): one line naming the file and the input, exit 2, never an internal error.
/// </summary>
public class OnnxRuntimeFailureTests
{
    /// <summary>A graph with a dynamic [N, 3, H, W] input that Expands it to [1, 3, 8, 8]: it runs at 8x8 only.</summary>
    static string TracedAtEight(TempDir dir)
    {
        var graph = Graph(new TensorShapeProto.Types.Dimension { DimParam = "N" }, new TensorShapeProto.Types.Dimension { DimParam = "H" });
        graph.Initializer.Add(OnnxTensors.FromTensor("shape", tensor(new long[] { 1, 3, 8, 8 })));
        graph.Node.Add(new NodeProto { Name = "Expand_traced", OpType = "Expand", Input = { "input", "shape" }, Output = { "output" } });
        return Save(graph, dir.File("traced.onnx"));
    }

    /// <summary>A graph whose input is fixed at [2, 3, 8, 8] (a static export of a batch of 2): a Relu.</summary>
    static string FixedBatchOfTwo(TempDir dir)
    {
        var graph = Graph(new TensorShapeProto.Types.Dimension { DimValue = 2 }, new TensorShapeProto.Types.Dimension { DimValue = 8 });
        graph.Node.Add(new NodeProto { Name = "Relu", OpType = "Relu", Input = { "input" }, Output = { "output" } });
        return Save(graph, dir.File("batch2.onnx"));
    }

    static GraphProto Graph(TensorShapeProto.Types.Dimension batch, TensorShapeProto.Types.Dimension side)
    {
        var graph = new GraphProto { Name = "g" };
        var type = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = new TensorShapeProto() };
        type.Shape.Dim.Add(batch);
        type.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = 3 });
        type.Shape.Dim.Add(side.Clone());
        type.Shape.Dim.Add(side.Clone());
        graph.Input.Add(new ValueInfoProto { Name = "input", Type = new TypeProto { TensorType = type } });
        graph.Output.Add(new ValueInfoProto { Name = "output", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } } });
        return graph;
    }

    static string Save(GraphProto graph, string path)
    {
        var model = new ModelProto { IrVersion = 8, Graph = graph, ProducerName = "test" };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        OnnxModelFile.Save(model, path);
        return path;
    }

    [Fact]
    public void BenchOfAModelThatFixesABatchOfTwoChecksAndTimesThatBatch()
    {
        using var dir = Fixture.Temp();
        var (code, stdout, stderr) = CliHarness.Rmnet("bench", FixedBatchOfTwo(dir), "--runs", "1", "--warmup", "0", "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var json = System.Text.Json.JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(new long[] { 2, 3, 8, 8 }, json.GetProperty("input_shape").EnumerateArray().Select(d => d.GetInt64()));
        Assert.True(json.GetProperty("plain_equivalent").GetBoolean());
    }

    [Fact]
    public void AModelThatFailsAtTheSizeAskedIsBadInputNamingTheFileAndTheInput()
    {
        using var dir = Fixture.Temp();
        string model = TracedAtEight(dir);
        foreach (var args in new[]
        {
            new[] { "verify", model, model, "--samples", "1", "--input-size", "16" },
            new[] { "bench", model, "--versus", model, "--batch", "1", "--size", "16", "--runs", "1", "--warmup", "0" },
        })
        {
            var (code, _, stderr) = CliHarness.Rmnet(args.Append("--quiet").ToArray());
            Assert.Equal(ExitCodes.BadInput, code);
            Assert.StartsWith($"rmnet: error: {model}: ONNX Runtime cannot run the model on an input of [1, 3, 16, 16]: ", stderr.Trim());
            Assert.Contains("runs only at those: give the batch and size it was exported at", stderr);
            Assert.DoesNotContain("internal error", stderr);
            Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        // At the size it was made for it runs.
        Assert.Equal(0, CliHarness.Rmnet("verify", model, model, "--samples", "1", "--input-size", "8", "--quiet").Code);
    }
}
