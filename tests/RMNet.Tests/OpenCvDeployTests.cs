using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using OpenCvSharp;
using OpenCvSharp.Dnn;
using RMNet.Onnx;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// A second runtime: OpenCV's DNN module (4.13, the official linux-x64 build) loads rmnet's plain ONNX files from
/// both paths and matches PyTorch. It reads ONNX the proto2 way, so it also catches lost attribute values.
/// </summary>
public class OpenCvDeployTests(ITestOutputHelper output)
{
    static (int Code, string Out, string Err) Rmnet(params string[] args) => CliHarness.Rmnet(args.Append("--quiet").ToArray());

    /// <summary>Runs <paramref name="path"/> in OpenCV on an [N, C, H, W] tensor.</summary>
    static Tensor RunOpenCv(string path, Tensor input)
    {
        using var net = CvDnn.ReadNetFromOnnx(path) ?? throw new InvalidOperationException($"OpenCV could not read {path}");
        var values = input.to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
        using var blob = new Mat(input.shape.Select(d => (int)d).ToArray(), MatType.CV_32F);
        Marshal.Copy(values, 0, blob.Data, values.Length);
        net.SetInput(blob);
        using var y = net.Forward();
        var dims = Enumerable.Range(0, y.Dims).Select(i => (long)y.Size(i)).ToArray();
        var result = new float[dims.Aggregate(1L, (a, b) => a * b)];
        Marshal.Copy(y.Data, result, 0, result.Length);
        return tensor(result).reshape(dims);
    }

    public static IEnumerable<object[]> Checkpoints() => new[]
    {
        "basic_narrow", "bottleneck_narrow", "resnext_narrow", "wide_narrow", "cifar_narrow", "preact_basic_narrow", "preact_bottleneck_narrow",
        "repvgg_narrow", "mobilenet_v2_narrow", "iresnet18_narrow", "iresnet50_narrow", "se_basic_narrow", "se_bottleneck_narrow",
    }.Select(n => new object[] { n });

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void CheckpointPathOutputLoadsAndMatchesPyTorch(string name) => ConvertAndCompareInOpenCv(name, $"{name}.pth");

    /// <summary>Converts <paramref name="input"/> to plain ONNX and runs it in OpenCV on the fixture's input, against PyTorch's output.</summary>
    void ConvertAndCompareInOpenCv(string name, string input, params string[] options)
    {
        using var dir = Fixture.Temp();
        string plain = dir.File("plain.onnx");
        var (code, _, err) = Rmnet(new[] { "convert", Fixture.Path_(input), "-o", plain }.Concat(options).ToArray());
        Assert.True(code == 0, err);
        var io = Fixture.Io(name);
        var report = Equivalence.Measure(io["output"], RunOpenCv(plain, io["input"]), 1e-4);
        output.WriteLine($"{name}: OpenCV vs PyTorch rel {report.MaxRelError:E2}");
        Assert.True(report.Passed, $"rel {report.MaxRelError}");
    }

    [Theory]
    [InlineData("preact_basic_narrow")]
    [InlineData("preact_bottleneck_narrow")]
    [InlineData("mobilenet_v2_narrow")]
    [InlineData("iresnet18_narrow")]
    [InlineData("repvgg_narrow")]
    [InlineData("se_basic_narrow")]
    [InlineData("se_bottleneck_narrow")]
    public void OnnxPathOutputLoadsAndMatchesPyTorch(string name) => ConvertAndCompareInOpenCv(name, $"onnx/{name}_opset13.onnx", "--strict");

    [Fact]
    public void ReluOnlyMobileNetV2UsesNoClampAndMatchesPyTorchInBothRuntimes()
    {
        using var dir = Fixture.Temp();
        string plain = dir.File("relu.onnx");
        var (code, _, err) = Rmnet("convert", Fixture.Path_("mobilenet_v2_narrow.pth"), "-o", plain, "--relu-only", "--verify", "--input-size", "64");
        Assert.True(code == 0, err);
        var ops = OnnxSummary.Read(plain).OpCounts.Keys.ToHashSet();
        Assert.Subset(new HashSet<string> { "Conv", "Relu", "GlobalAveragePool", "Reshape", "Gemm" }, ops);
        var io = Fixture.Io("mobilenet_v2_narrow");
        using var ort = new OnnxRuntimeRunner(plain);
        var inOrt = Equivalence.Measure(io["output"], ort.Run(io["input"]), 1e-4);
        var inOpenCv = Equivalence.Measure(io["output"], RunOpenCv(plain, io["input"]), 1e-4);
        output.WriteLine($"relu-only MobileNetV2 vs PyTorch: ONNX Runtime rel {inOrt.MaxRelError:E2}, OpenCV rel {inOpenCv.MaxRelError:E2}");
        Assert.True(inOrt.Passed, $"rel {inOrt.MaxRelError}");
        Assert.True(inOpenCv.Passed, $"rel {inOpenCv.MaxRelError}");

        // ONNX input keeps its clamps: the option is refused with one line, and nothing is written.
        var (onnxCode, _, onnxErr) = Rmnet("convert", Fixture.Path_("onnx/mobilenet_v2_narrow_opset13.onnx"), "-o", dir.File("x.onnx"), "--relu-only");
        Assert.Equal(2, onnxCode);
        Assert.Contains("--relu-only applies to checkpoints", onnxErr);
        Assert.False(File.Exists(dir.File("x.onnx")));
    }

    [Theory]
    [InlineData("ceil_mode")]       // PyTorch writes MaxPool ceil_mode=0: it used to be written without its value
    [InlineData("storage_order")]   // as CNTK's exporter writes MaxPool
    public void ZeroValuedAttributesSurviveConversion(string attribute)
    {
        using var dir = Fixture.Temp();
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Fixture.Path_("onnx/basic_narrow_opset13.onnx")));
        var pool = model.Graph.Node.Single(n => n.OpType == "MaxPool");
        if (attribute == "storage_order")
            pool.Attribute.Add(new AttributeProto { Name = "storage_order", Type = AttributeProto.Types.AttributeType.Int, I = 0 });
        Assert.Contains(pool.Attribute, a => a.Name == attribute);
        string input = dir.File("in.onnx");
        File.WriteAllBytes(input, model.ToByteArray());
        string plain = dir.File("plain.onnx");
        var (code, _, err) = Rmnet("convert", input, "-o", plain, "--strict");
        Assert.True(code == 0, err);
        var x = randn(2, 3, 40, 40, generator: manual_seed(3));
        using var ort = new OnnxRuntimeRunner(Fixture.Path_("onnx/basic_narrow_opset13.onnx"));
        var report = Equivalence.Measure(ort.Run(x), RunOpenCv(plain, x), 1e-4);
        Assert.True(report.Passed, $"rel {report.MaxRelError}");
        Assert.All(ScalarAttributes(File.ReadAllBytes(plain)), a => Assert.True(a.HasValue, $"attribute '{a.Name}' (type {a.Type}) has no value field"));
    }

    [Fact]
    public void EveryScalarAttributeOfEveryOutputHasItsValueField()
    {
        using var dir = Fixture.Temp();
        foreach (var (input, name) in new[] { ("basic_narrow.pth", "ck.onnx"), ("mobilenet_v2_narrow.pth", "mb.onnx"), ("onnx/basic_narrow_opset13.onnx", "ox.onnx"),
                     ("onnx/mobilenet_v2_narrow_opset13.onnx", "oxmb.onnx") })
        {
            Assert.Equal(0, Rmnet("convert", Fixture.Path_(input), "-o", dir.File(name)).Code);
            var attributes = ScalarAttributes(File.ReadAllBytes(dir.File(name))).ToList();
            Assert.NotEmpty(attributes);
            Assert.All(attributes, a => Assert.True(a.HasValue, $"{input}: attribute '{a.Name}' (type {a.Type}) has no value field"));
        }
        // The zeros that matter are among them (MaxPool ceil_mode=0 from PyTorch's export).
        Assert.Contains(ScalarAttributes(File.ReadAllBytes(dir.File("ox.onnx"))), a => a.Name == "ceil_mode" && a.HasValue);
    }

    /// <summary>
    /// Every INT, FLOAT and STRING attribute of the graph's nodes, read at the protobuf wire level: whether its value
    /// field (i = 3, f = 2, s = 4) is present, which the generated classes cannot tell.
    /// </summary>
    static IEnumerable<(string Name, int Type, bool HasValue)> ScalarAttributes(byte[] model)
    {
        foreach (var graph in Fields(model, 7))
            foreach (var node in Fields(graph, 1))
                foreach (var attribute in Fields(node, 5))
                {
                    var fields = new List<(int Number, byte[] Bytes)>();
                    var input = new CodedInputStream(attribute);
                    uint tag;
                    while ((tag = input.ReadTag()) != 0)
                    {
                        int number = WireFormat.GetTagFieldNumber(tag);
                        if (WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited) fields.Add((number, input.ReadBytes().ToByteArray()));
                        else { fields.Add((number, Array.Empty<byte>())); input.SkipLastField(); }
                    }
                    string name = System.Text.Encoding.UTF8.GetString(fields.First(f => f.Number == 1).Bytes);
                    var typeAttribute = new AttributeProto();
                    typeAttribute.MergeFrom(attribute);
                    int type = (int)typeAttribute.Type;
                    int valueField = type switch { 1 => 2, 2 => 3, 3 => 4, _ => 0 };   // FLOAT, INT, STRING
                    if (valueField != 0) yield return (name, type, fields.Any(f => f.Number == valueField));
                }
    }

    /// <summary>The bytes of every length-delimited field <paramref name="number"/> of a message.</summary>
    static IEnumerable<byte[]> Fields(byte[] message, int number)
    {
        var input = new CodedInputStream(message);
        uint tag;
        var found = new List<byte[]>();
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == number && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
                found.Add(input.ReadBytes().ToByteArray());
            else input.SkipLastField();
        }
        return found;
    }
}
