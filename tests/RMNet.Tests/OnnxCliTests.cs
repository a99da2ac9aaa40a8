using System.Text.Json;
using Google.Protobuf;
using Onnx;
using RMNet.Cli;
using Xunit;

namespace RMNet.Tests;

/// <summary>The ONNX path through the CLI: convert, --strict, verify, inspect, and malformed graphs.</summary>
public class OnnxCliTests
{
    static (int Code, string Out, string Err) Rmnet(params string[] args) => CliHarness.Rmnet(args.Append("--quiet").ToArray());

    static string Opset13 => Fixture.Path_("onnx/basic_narrow_opset13.onnx");

    static string Edited(TempDir dir, string name, Action<ModelProto> edit)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Opset13));
        edit(model);
        string path = dir.File(name);
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    [Fact]
    public void ConvertVerifyAndInspectAnOnnxModel()
    {
        using var dir = Fixture.Temp();
        string output = dir.File("plain.onnx");
        var (code, stdout, stderr) = Rmnet("convert", Fixture.Path_("onnx/quirk_sum_swapped.onnx"), "-o", output, "--verify", "--input-size", "48", "--json");
        Assert.True(code == 0, stderr);
        var root = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(5, root.GetProperty("blocks_plain").GetInt32());
        Assert.Equal(14, root.GetProperty("folded_batch_norms").GetInt32()); // stem + 5 blocks x 2 convs + 3 projections
        Assert.True(root.GetProperty("verification").GetProperty("passed").GetBoolean());

        Assert.Equal(0, Rmnet("verify", Fixture.Path_("onnx/quirk_sum_swapped.onnx"), output, "--samples", "2", "--input-size", "40").Code);

        var (ic, io, _) = Rmnet("inspect", Fixture.Path_("onnx/quirk_sum_swapped.onnx"), "--json");
        Assert.Equal(0, ic);
        var inspected = JsonDocument.Parse(io).RootElement;
        Assert.Equal(5, inspected.GetProperty("joins_found").GetInt32());
        Assert.Equal(5, inspected.GetProperty("joins").EnumerateArray().Count(j => j.GetProperty("op").GetString() == "Sum"));
        Assert.Equal(3, root.GetProperty("blocks").EnumerateArray().Count(b => b.GetProperty("shortcut").GetString() == "projection"));
        var (pc, po, _) = Rmnet("inspect", output, "--json");
        Assert.Equal(0, pc);
        Assert.Equal("plain", JsonDocument.Parse(po).RootElement.GetProperty("form").GetString());
    }

    [Fact]
    public void BlockWithPossiblyNegativeInputIsCarriedWithPRelu()
    {
        using var dir = Fixture.Temp();
        // The stem's Relu becomes LeakyRelu: the first block's input may be negative; it is carried exactly.
        string input = Edited(dir, "leaky.onnx", m => m.Graph.Node.First(n => n.OpType == "Relu").OpType = "LeakyRelu");
        string output = dir.File("out.onnx");
        var (code, stdout, stderr) = Rmnet("convert", input, "-o", output, "--verify", "--input-size", "40", "--strict");
        Assert.True(code == 0, stderr);
        Assert.Contains("5 of 5 residual joins made plain", stdout);
        Assert.Contains("EQUIVALENT", stdout);
        Assert.True(RMNet.Onnx.OnnxSummary.Read(output).OpCounts.ContainsKey("PRelu"));
    }

    [Fact]
    public void BlockThatCannotBeMadePlainIsKeptReportedAndFailsStrict()
    {
        using var dir = Fixture.Temp();
        // A dilated 3x3 conv (dilation 2, pads 2) inside the first block: no exact Dirac carry through it here.
        string input = Edited(dir, "dilated.onnx", m =>
        {
            var conv = m.Graph.Node.Where(n => n.OpType == "Conv").ElementAt(1);
            conv.Attribute.First(a => a.Name == "dilations").Ints[0] = 2;
            conv.Attribute.First(a => a.Name == "dilations").Ints[1] = 2;
            var pads = conv.Attribute.First(a => a.Name == "pads").Ints;
            for (int i = 0; i < 4; i++) pads[i] = 2;
        });
        string output = dir.File("out.onnx");
        var (code, stdout, _) = Rmnet("convert", input, "-o", output, "--verify", "--input-size", "40");
        Assert.Equal(0, code);
        Assert.Contains("4 of 5 residual joins made plain", stdout);
        Assert.Contains("dilated conv", stdout);
        File.Delete(output);
        var (strict, _, err) = Rmnet("convert", input, "-o", output, "--strict");
        Assert.Equal(ExitCodes.NotEquivalent, strict);
        Assert.Contains("--strict", err);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void VerifyDetectsATamperedOnnxModel()
    {
        using var dir = Fixture.Temp();
        string output = dir.File("plain.onnx");
        Assert.Equal(0, Rmnet("convert", Opset13, "-o", output).Code);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output));
        var bias = model.Graph.Initializer.First(t => t.Name.EndsWith("_rm1_bias"));
        var bytes = bias.RawData.ToByteArray();
        BitConverter.GetBytes(BitConverter.ToSingle(bytes, 0) + 0.5f).CopyTo(bytes, 0);
        bias.RawData = ByteString.CopyFrom(bytes);
        File.WriteAllBytes(output, model.ToByteArray());
        Assert.Equal(ExitCodes.NotEquivalent, Rmnet("verify", Opset13, output, "--input-size", "40").Code);
    }

    public static IEnumerable<object[]> Malformed() => new[]
    {
        new object[] { "missing-initializer", "which no node, graph input or initializer provides" },
        new object[] { "cycle", "cycle through node" },
        new object[] { "unknown-op", "unknown operator 'FancyRelu'" },
        new object[] { "dangling-output", "is produced by no node" },
        new object[] { "empty-external", "is empty" },
        new object[] { "not-protobuf", "not a valid ONNX protobuf" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedGraphsExitTwoWithAClearMessage(string kind, string expected)
    {
        using var dir = Fixture.Temp();
        string input = kind switch
        {
            "missing-initializer" => Edited(dir, "m.onnx", m => m.Graph.Initializer.RemoveAt(3)),
            "cycle" => Edited(dir, "m.onnx", m =>
            {
                var relus = m.Graph.Node.Where(n => n.OpType == "Relu").ToList();
                relus[1].Input[0] = relus[3].Output[0];   // an earlier node reads a later node's output
            }),
            "unknown-op" => Edited(dir, "m.onnx", m => m.Graph.Node.Where(n => n.OpType == "Relu").ElementAt(1).OpType = "FancyRelu"),
            "dangling-output" => Edited(dir, "m.onnx", m => m.Graph.Output[0].Name = "nowhere"),
            "empty-external" => ExternalWithEmptyData(dir),
            _ => WriteText(dir),
        };
        // inspect reads no external data, so only convert meets an empty data file.
        var commands = new[] { new[] { "convert", input, "-o", dir.File("out.onnx") }, new[] { "inspect", input } };
        foreach (var command in kind == "empty-external" ? commands.Take(1) : commands)
        {
            var (code, _, stderr) = Rmnet(command);
            Assert.Equal(ExitCodes.BadInput, code);
            var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains(input, line);
            Assert.Contains(expected, line);
        }
        Assert.False(File.Exists(dir.File("out.onnx")));
    }

    static string ExternalWithEmptyData(TempDir dir)
    {
        File.Copy(Fixture.Path_("onnx/external/basic_external.onnx"), dir.File("e.onnx"));
        File.WriteAllBytes(dir.File("basic_external.weights"), Array.Empty<byte>());
        return dir.File("e.onnx");
    }

    static string WriteText(TempDir dir)
    {
        File.WriteAllText(dir.File("t.onnx"), "definitely not protobuf \u0001\u0002\u00ff");
        return dir.File("t.onnx");
    }

    [Fact]
    public void VerifyTakesADynamicChannelCountFromTheFirstConvNotThree()
    {
        using var dir = Fixture.Temp();
        // The one-channel CIFAR-style fixture, exported with its input's channel dimension made dynamic.
        Assert.Equal(0, Rmnet("convert", Fixture.Path_("cifar_narrow.pth"), "-o", dir.File("gray.onnx")).Code);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(dir.File("gray.onnx")));
        model.Graph.Input[0].Type.TensorType.Shape.Dim[1] = new TensorShapeProto.Types.Dimension { DimParam = "channels" };
        File.WriteAllBytes(dir.File("dynamic.onnx"), model.ToByteArray());
        var (code, stdout, stderr) = Rmnet("verify", dir.File("dynamic.onnx"), dir.File("gray.onnx"), "--input-size", "28", "--json");
        Assert.True(code == 0, stderr);
        var v = JsonDocument.Parse(stdout).RootElement.GetProperty("verification");
        Assert.Equal(4, v.GetProperty("samples").GetInt32());
        Assert.Equal(0.0, v.GetProperty("max_abs_error").GetDouble());
    }
}
