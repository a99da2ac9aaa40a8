using Onnx;
using RMNet.Onnx;
using RMNet.Plain;
using Xunit;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// The conditions of the passes that read DBB's exported branches as convs, on small graphs built here: where they
/// hold, the rewritten graph computes what the original does (ONNX Runtime, 1e-5 relative); where one fails, the
/// graph is left as it is.
/// </summary>
public class DbbPassTests
{
    const long Channels = 4, Size = 9;

    [Theory]
    [InlineData(1, 1, 2, true)]
    [InlineData(1, 4, 1, true)]    // dense 1x1 then depthwise kxk (DBB's first block's average branch)
    [InlineData(4, 4, 2, true)]    // grouped pair (DBB's depthwise blocks)
    [InlineData(2, 4, 1, true)]
    [InlineData(4, 2, 1, false)]   // the kxk's groups not a multiple of the 1x1's: would couple channels the 1x1 keeps apart
    public void APointwiseThenUnpaddedConvIsOneConv(int groups1, int groups2, int stride, bool merges)
    {
        manual_seed(21);
        var nodes = new List<NodeProto>();
        var inits = new List<TensorProto>();
        string Init(string name, Tensor t) { inits.Add(OnnxTensors.FromTensor(name, t)); return name; }
        long mid = 8;
        var first = new ConvLayer(randn(mid, Channels / groups1, 1, 1), randn(mid), 1, 1, Padding2d.All(1), groups1);
        var second = new ConvLayer(randn(Channels, mid / groups2, 3, 3), randn(Channels), stride, stride, Padding2d.All(0), groups2);
        nodes.Add(OnnxNodes.Conv("first", "input", Init("w1", first.Weight), Init("b1", first.Bias), "y", first));
        nodes.Add(OnnxNodes.Conv("second", "y", Init("w2", second.Weight), Init("b2", second.Bias), "output", second));
        var (merged, before, after) = Rewrite(nodes, inits, m => PointwiseThenConv.Run(m, "test"));
        Assert.Equal(merges ? 1 : 0, merged);
        Assert.Equal(merges ? 1 : 2, after.Graph.Node.Count(n => n.OpType == "Conv"));
        AssertSame(before, after);
    }

    [Fact]
    public void APaddedKxkConvAfterThePointwiseIsNotMerged()
    {
        manual_seed(22);
        var nodes = new List<NodeProto>();
        var inits = new List<TensorProto>();
        string Init(string name, Tensor t) { inits.Add(OnnxTensors.FromTensor(name, t)); return name; }
        // Its zero padding of y is not b1, which the merged conv would see there.
        var first = new ConvLayer(randn(8, Channels, 1, 1), randn(8), 1, 1, Padding2d.All(0), 1);
        var second = new ConvLayer(randn(Channels, 8, 3, 3), randn(Channels), 1, 1, Padding2d.All(1), 1);
        nodes.Add(OnnxNodes.Conv("first", "input", Init("w1", first.Weight), Init("b1", first.Bias), "y", first));
        nodes.Add(OnnxNodes.Conv("second", "y", Init("w2", second.Weight), Init("b2", second.Bias), "output", second));
        var (merged, _, after) = Rewrite(nodes, inits, m => PointwiseThenConv.Run(m, "test"));
        Assert.Equal(0, merged);
        Assert.Equal(2, after.Graph.Node.Count(n => n.OpType == "Conv"));
    }

    [Theory]
    [InlineData(1, 1, true)]       // padding counted in the average: a conv of 1/k^2 taps
    [InlineData(0, 1, false)]      // padding not counted: the border divisor is smaller, not a conv
    [InlineData(0, 0, true)]       // no padding: counted or not is the same
    public void AnAveragePoolInASumIsADepthwiseConvWhereItsDivisorIsFixed(int countIncludePad, int pad, bool rewritten)
    {
        manual_seed(23);
        var nodes = new List<NodeProto>();
        var inits = new List<TensorProto>();
        string Init(string name, Tensor t) { inits.Add(OnnxTensors.FromTensor(name, t)); return name; }
        var conv = new ConvLayer(randn(Channels, Channels, 3, 3), randn(Channels), 2, 2, Padding2d.All(pad), 1);
        nodes.Add(OnnxNodes.Conv("conv", "input", Init("w", conv.Weight), Init("b", conv.Bias), "c", conv));
        nodes.Add(OnnxNodes.Unary("AveragePool", "pool", "input", "p", OnnxNodes.Ints("kernel_shape", 3, 3), OnnxNodes.Ints("strides", 2, 2),
            OnnxNodes.Ints("pads", pad, pad, pad, pad), OnnxNodes.Int("count_include_pad", countIncludePad)));
        nodes.Add(new NodeProto { Name = "sum", OpType = "Add", Input = { "c", "p" }, Output = { "output" } });
        var (count, before, after) = Rewrite(nodes, inits, m => AveragePoolAsConv.Run(m, "test"));
        Assert.Equal(rewritten ? 1 : 0, count);
        Assert.Equal(rewritten ? 0 : 1, after.Graph.Node.Count(n => n.OpType == "AveragePool"));
        AssertSame(before, after);
    }

    /// <summary>A [1, 4, 9, 9] model of <paramref name="nodes"/>, before and after <paramref name="pass"/> (and what it returned).</summary>
    static (int Count, ModelProto Before, ModelProto After) Rewrite(List<NodeProto> nodes, List<TensorProto> inits, Func<ModelProto, int> pass)
    {
        var graph = new GraphProto { Name = "g" };
        graph.Node.AddRange(nodes);
        graph.Initializer.AddRange(inits);
        graph.Input.Add(Value("input", 1, Channels, Size, Size));
        graph.Output.Add(Value("output"));
        var model = new ModelProto { IrVersion = 8, Graph = graph, ProducerName = "test" };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        var before = model.Clone();
        int count = pass(model);
        return (count, before, model);
    }

    static ValueInfoProto Value(string name, params long[] dims)
    {
        var type = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float };
        if (dims.Length > 0)
        {
            type.Shape = new TensorShapeProto();
            foreach (var d in dims) type.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = type } };
    }

    static void AssertSame(ModelProto before, ModelProto after)
    {
        using var dir = Fixture.Temp();
        string a = dir.File("before.onnx"), b = dir.File("after.onnx");
        OnnxModelFile.Save(before, a);
        OnnxModelFile.Save(after, b);
        var x = randn(1, Channels, Size, Size);
        using var ra = new OnnxRuntimeRunner(a);
        using var rb = new OnnxRuntimeRunner(b);
        var ya = ra.Run(x);
        var yb = rb.Run(x);
        double rel = (ya - yb).abs().max().item<float>() / ya.abs().max().item<float>();
        Assert.True(rel <= 1e-5, $"rel {rel:E2}");
    }
}
