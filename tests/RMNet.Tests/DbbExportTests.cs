using Google.Protobuf;
using RMNet.Onnx;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// PyTorch's default export (its opset, constant folding, the input's fixed shape) of the DBB MobileNet in training
/// form (make_fixtures.py --reparam, <c>dbb_mobilenet_narrow_default.onnx</c>): BNAndPad's slice assignments, the
/// average pools and the 1x1-kxk pairs are read as convs (ShapeConstants, BorderWrites, AveragePoolAsConv,
/// PointwiseThenConv), so every sum merges into one conv; where a border write is not what the conv gives for a zero
/// input, the block's joins stay and are reported.
/// </summary>
public class DbbExportTests(ITestOutputHelper output)
{
    const string Name = "dbb_mobilenet_narrow";
    static string Export => Fixture.Path_($"onnx/{Name}_default.onnx");

    [Fact]
    public void EveryBlockBecomesOneConvAndReluThatEqualsPyTorch()
    {
        var result = OnnxConversion.Convert(Export, inputSize: 64);
        Assert.Equal(15, result.JoinsFound);
        Assert.Equal(0, result.JoinsRemaining);
        Assert.Equal(7, result.MergedBranches);
        var ops = result.Model.Graph.Node.Select(n => n.OpType).ToList();
        // conv1 and six blocks of depthwise and pointwise conv, each one Conv + Relu; the head after them.
        Assert.Equal(string.Join(" ", Enumerable.Repeat("Conv Relu", 13)), string.Join(" ", ops.Take(26)));
        Assert.DoesNotContain(ops, op => op is "ScatterND" or "Pad" or "AveragePool" or "BatchNormalization" or "Add");

        using var dir = Fixture.Temp();
        string path = dir.File("plain.onnx");
        OnnxModelFile.Save(result.Model, path);
        using var ort = new OnnxRuntimeRunner(path);
        var io = Fixture.Io(Name);
        // The export's batch is fixed at 1: PyTorch's first output.
        var expected = io["output"][..1];
        var actual = ort.Run(io["input"][..1]);
        double rel = (actual - expected).abs().max().item<float>() / expected.abs().max().item<float>();
        output.WriteLine($"{Name} export: {result.JoinsFound} joins plain, {result.MergedBranches} sums merged; vs PyTorch rel {rel:E2}");
        Assert.True(rel <= 1e-5, $"rel {rel:E2}");
    }

    /// <summary>
    /// conv1's average branch pads with values other than its 1x1 conv's zero-input value (the BNAndPad values moved
    /// off): no pass may read those writes as padding, so conv1's sum stays a sum, its joins are reported kept, and the
    /// converted graph still computes what the altered original does.
    /// </summary>
    [Fact]
    public void ABorderWriteOfAnotherValueKeepsItsJoinsReported()
    {
        var model = OnnxModelFile.Load(Export);
        // BNAndPad's values: [C, 1, 1] float constants that PyTorch expands over each border; the first is conv1's average branch's.
        var g = new OnnxGraph(model.Graph, Export);
        var values = g.Order.Where(n => n.OpType == "Expand").Select(n => n.Input[0])
            .First(i => g.Initializers.TryGetValue(i, out var t) && t.Dims.Count == 3 && t.Dims[1] == 1 && t.Dims[2] == 1);
        var proto = model.Graph.Initializer.Single(t => t.Name == values);
        var altered = OnnxTensors.ToTensor(proto, Export, ScalarType.Float32).clone();
        altered[0, 0, 0] += 0.25f;
        var replacement = OnnxTensors.FromTensor(values, altered);
        proto.RawData = ByteString.CopyFrom(replacement.RawData.ToByteArray());
        proto.FloatData.Clear();

        using var dir = Fixture.Temp();
        string original = dir.File("altered.onnx");
        OnnxModelFile.Save(model, original);
        var result = OnnxConversion.Convert(original, inputSize: 64);
        var kept = result.Joins.Where(j => j.Remains).Select(j => j.Name).ToList();
        output.WriteLine($"kept: {string.Join(", ", kept)}; {result.MergedBranches} sums merged");
        Assert.NotEmpty(kept);
        Assert.All(kept, name => Assert.StartsWith("/conv1/", name));
        // 7: the blocks after conv1 (6), and in conv1 the sub-sum of its branches the altered writes do not enter.
        Assert.Equal(7, result.MergedBranches);
        Assert.Contains(result.Model.Graph.Node, n => n.OpType == "ScatterND");

        string converted = dir.File("converted.onnx");
        OnnxModelFile.Save(result.Model, converted);
        var vsOriginal = Verifier.Verify(original, converted, new VerifyOptions(Samples: 2, InputSize: 64));
        output.WriteLine($"vs altered original rel {vsOriginal.MaxRelError:E2}");
        Assert.True(vsOriginal.Passed, $"{vsOriginal.MaxRelError}");
    }
}
