using System.Text.Json;
using Google.Protobuf;
using Onnx;
using RMNet.Cli;
using RMNet.Onnx;
using Xunit;

namespace RMNet.Tests;

/// <summary>
/// Every residual join is accounted for, whatever the block patterns recognise: PyTorch exports of networks
/// outside them (RegNet-Y, ResNet-D, a SiLU branch, a Concat branch) are reported and fail <c>--strict</c>;
/// exporter quirks in front of weights (Identity, Cast) are looked through; inspect reads no weights.
/// </summary>
public class OnnxJoinTests
{
    static (int Code, string Out, string Err) Rmnet(params string[] args) => CliHarness.Rmnet(args.Append("--quiet").ToArray());

    static JsonElement Json(string stdout) => JsonDocument.Parse(stdout).RootElement;

    static string Onnx(string name) => Fixture.Path_($"onnx/{name}.onnx");

    [Fact]
    public void FreshResNet18ExportWithIdentityNodesBecomesPlain()
    {
        // A freshly initialised torchvision ResNet-18 layout at opset 17: PyTorch's exporter feeds 16 deduplicated
        // BN tensors through Identity nodes. Before the importer looked through them, 0 of 8 blocks were found.
        string input = Onnx("resnet18_fresh_narrow_opset17");
        Assert.Equal(16, ModelProto.Parser.ParseFrom(File.ReadAllBytes(input)).Graph.Node.Count(n => n.OpType == "Identity"));
        using var dir = Fixture.Temp();
        string output = dir.File("plain.onnx");
        var (code, stdout, stderr) = Rmnet("convert", input, "-o", output, "--strict", "--verify", "--input-size", "32", "--json");
        Assert.True(code == 0, stderr);
        var root = Json(stdout);
        Assert.Equal(8, root.GetProperty("joins_found").GetInt32());
        Assert.Equal(0, root.GetProperty("joins_remaining").GetInt32());
        Assert.True(root.GetProperty("verification").GetProperty("passed").GetBoolean());
        var ops = OnnxSummary.Read(output).OpCounts;
        Assert.False(ops.ContainsKey("Add") || ops.ContainsKey("Identity"));
        Assert.Equal(17, ops["Conv"]);   // stem + 8 blocks x 2 (projections merged into the blocks' last convs)
    }

    public static IEnumerable<object[]> Unplainable() => new[]
    {
        // name, residual joins in the input, joins RM cannot make plain, gates
        new object[] { "unplainable_narrow_opset13", 2, 2, 1 }, // SiLU (x * Sigmoid(x)) in one branch, Concat in the other
    };

    [Fact]
    public void RegNetYsSeInTheMiddleOfTheBranchIsCarriedThroughAndItsJoinsMadePlain()
    {
        // torchvision's RegNet-Y export: a, b, SE, c in each branch. The carried channels get a gate of exactly 1.
        using var dir = Fixture.Temp();
        string output = dir.File("out.onnx");
        var (code, stdout, stderr) = Rmnet("convert", Onnx("regnet_y_narrow_opset13"), "-o", output, "--input-size", "32", "--verify", "--strict", "--json");
        Assert.True(code == 0, stderr);
        var root = Json(stdout);
        Assert.Equal((3, 0, 3), (root.GetProperty("joins_found").GetInt32(), root.GetProperty("joins_remaining").GetInt32(), root.GetProperty("gates").GetInt32()));
        Assert.True(root.GetProperty("verification").GetProperty("passed").GetBoolean());
        Assert.Empty(OnnxSummary.Read(output).Residuals);
    }

    [Theory]
    [MemberData(nameof(Unplainable))]
    public void JoinsOutsideThePatternsAreReportedAndFailStrict(string name, int found, int remaining, int gates)
    {
        string input = Onnx(name);
        var (ic, io, _) = Rmnet("inspect", input, "--json");
        Assert.Equal(0, ic);
        var inspected = Json(io);
        Assert.Equal("residual", inspected.GetProperty("form").GetString());
        Assert.Equal(found, inspected.GetProperty("joins_found").GetInt32());
        Assert.Equal(gates, inspected.GetProperty("joins").EnumerateArray().Count(j => j.GetProperty("kind").GetString() == "gate"));

        using var dir = Fixture.Temp();
        string output = dir.File("out.onnx");
        var (code, stdout, stderr) = Rmnet("convert", input, "-o", output, "--input-size", "32", "--verify", "--json");
        Assert.True(code == 0, stderr);
        var root = Json(stdout);
        Assert.Equal(found, root.GetProperty("joins_found").GetInt32());
        Assert.Equal(remaining, root.GetProperty("joins_remaining").GetInt32());
        Assert.Equal(gates, root.GetProperty("gates").GetInt32());
        var kept = root.GetProperty("joins").EnumerateArray().Where(j => j.GetProperty("status").GetString() == "kept").ToList();
        Assert.Equal(remaining, kept.Count);
        Assert.All(kept, j => Assert.False(string.IsNullOrEmpty(j.GetProperty("reason").GetString())));
        Assert.True(root.GetProperty("verification").GetProperty("passed").GetBoolean());
        // The output itself still has exactly those joins: the report is the output's ground truth.
        Assert.Equal(remaining, OnnxSummary.Read(output).Residuals.Count);

        File.Delete(output);
        var (strict, _, err) = Rmnet("convert", input, "-o", output, "--strict");
        Assert.Equal(ExitCodes.NotEquivalent, strict);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains($"{remaining} residual join(s) remain", line);
        Assert.False(File.Exists(output));
        // Under --json the refusal is the report plus error and exit_code, and no temporary file is left behind.
        var (jsonCode, jsonOut, _) = Rmnet("convert", input, "-o", output, "--strict", "--json");
        Assert.Equal(ExitCodes.NotEquivalent, jsonCode);
        var refused = Json(jsonOut);
        Assert.Equal(ExitCodes.NotEquivalent, refused.GetProperty("exit_code").GetInt32());
        Assert.Contains("--strict", refused.GetProperty("error").GetString());
        Assert.Equal(remaining, refused.GetProperty("joins_remaining").GetInt32());
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void ResNetDAveragePooledShortcutsBecomePlainAndSayWhereTheyAreExact()
    {
        // timm's ResNet-D layout: AvgPool2d(2, 2, ceil_mode, count_include_pad=False) then a 1x1 conv on the stride-2 shortcuts.
        string input = Onnx("resnet_d_narrow_opset13");
        using var dir = Fixture.Temp();
        string output = dir.File("plain.onnx");
        var (code, stdout, stderr) = Rmnet("convert", input, "-o", output, "--strict", "--verify", "--input-size", "32", "--json");
        Assert.True(code == 0, stderr);
        var root = Json(stdout);
        Assert.Equal((6, 0), (root.GetProperty("joins_found").GetInt32(), root.GetProperty("joins_remaining").GetInt32()));
        var pooled = root.GetProperty("blocks").EnumerateArray().Where(b => b.GetProperty("shortcut").GetString() == "avg-pool projection").ToList();
        Assert.Equal(2, pooled.Count);
        Assert.All(pooled, b => Assert.Contains("divisible by 2", b.GetProperty("condition").GetString()));
        Assert.True(root.GetProperty("verification").GetProperty("max_rel_error").GetDouble() < 1e-6);
        Assert.DoesNotContain("AveragePool", OnnxSummary.Read(output).OpCounts.Keys);

        // Where the condition holds (64: even maps at both pooled blocks) it is exact; at 36 layer2 gets a 9x9 map, and it is not.
        Assert.Equal(0, Rmnet("verify", input, output, "--input-size", "64").Code);
        Assert.Equal(ExitCodes.NotEquivalent, Rmnet("verify", input, output, "--input-size", "36").Code);

        // A graph that fixes an odd map size keeps those blocks, says why, and fails --strict.
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(input));
        var dims = model.Graph.Input[0].Type.TensorType.Shape.Dim;
        dims[2].DimValue = 36; dims[3].DimValue = 36;
        string fixedInput = dir.File("fixed36.onnx");
        File.WriteAllBytes(fixedInput, model.ToByteArray());
        var (fixedCode, fixedOut, _) = Rmnet("convert", fixedInput, "-o", dir.File("p36.onnx"), "--json");
        Assert.Equal(0, fixedCode);
        var kept = Json(fixedOut).GetProperty("joins").EnumerateArray().Where(j => j.GetProperty("status").GetString() == "kept").ToList();
        Assert.Equal(2, kept.Count);   // layer2.0 sees 9x9, layer3.0 5x5: both pools have partial windows
        Assert.All(kept, j => Assert.Contains("partial windows", j.GetProperty("reason").GetString()));
        Assert.Equal(ExitCodes.NotEquivalent, Rmnet("convert", fixedInput, "-o", dir.File("s36.onnx"), "--strict").Code);
    }

    [Fact]
    public void AnAdditionOfABiasOrOfTwoInputsIsNotAJoin()
    {
        // MatMul + Add(bias) classifier: the bias is an initializer, so only the 5 blocks' sums are joins.
        var joins = OnnxSummary.Read(Onnx("quirk_reducemean_reshape_matmul")).Joins;
        Assert.Equal(5, joins.Count);
        Assert.All(joins, j => Assert.Equal("residual", j.Kind));

        // Two graph inputs added together share no ancestor.
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "two" } };
        model.OpsetImport.Add(new OperatorSetIdProto { Version = 13 });
        foreach (var name in new[] { "a", "b" }) model.Graph.Input.Add(new ValueInfoProto { Name = name });
        model.Graph.Node.Add(new NodeProto { OpType = "Add", Input = { "a", "b" }, Output = { "sum" } });
        model.Graph.Node.Add(new NodeProto { OpType = "Relu", Input = { "sum" }, Output = { "y" } });
        model.Graph.Node.Add(new NodeProto { OpType = "Add", Input = { "y", "a" }, Output = { "z" } });
        model.Graph.Output.Add(new ValueInfoProto { Name = "z" });
        var found = ResidualJoins.Find(new OnnxGraph(model.Graph, "two.onnx"));
        Assert.Equal("z", Assert.Single(found).Name);   // y descends from a, so y + a is a join; a + b is not
    }

    [Fact]
    public void CastOfAHalfPrecisionWeightIsLookedThrough()
    {
        using var dir = Fixture.Temp();
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Onnx("basic_narrow_opset13")));
        // Every conv weight is stored as float16 and cast to float in the graph, as some exporters write it.
        foreach (var conv in model.Graph.Node.Where(n => n.OpType == "Conv").ToList())
        {
            var weight = model.Graph.Initializer.First(t => t.Name == conv.Input[1]);
            using var values = OnnxTensors.ToTensor(weight, "m").to_type(TorchSharp.torch.ScalarType.Float16);
            var half = new TensorProto { Name = weight.Name + "_f16", DataType = (int)TensorProto.Types.DataType.Float16, RawData = ByteString.CopyFrom(values.bytes) };
            half.Dims.AddRange(weight.Dims);
            model.Graph.Initializer.Remove(weight);
            model.Graph.Initializer.Add(half);
            var cast = new NodeProto { Name = weight.Name + "_cast", OpType = "Cast", Input = { half.Name }, Output = { weight.Name } };
            cast.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)TensorProto.Types.DataType.Float });
            model.Graph.Node.Insert(0, cast);
        }
        string input = dir.File("cast.onnx");
        File.WriteAllBytes(input, model.ToByteArray());
        var (code, stdout, stderr) = Rmnet("convert", input, "-o", dir.File("plain.onnx"), "--strict", "--verify", "--input-size", "40");
        Assert.True(code == 0, stderr);
        Assert.Contains("5 of 5 residual joins made plain", stdout);
        Assert.False(OnnxSummary.Read(dir.File("plain.onnx")).OpCounts.ContainsKey("Cast"));
    }

    [Fact]
    public void Opset21IsRead()
    {
        using var dir = Fixture.Temp();
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Onnx("basic_narrow_opset17")));
        // Every operator of this graph has the same definition at opset 21 as at 17.
        model.OpsetImport.Single().Version = 21;
        model.IrVersion = 10;
        string input = dir.File("opset21.onnx");
        File.WriteAllBytes(input, model.ToByteArray());
        var (code, stdout, stderr) = Rmnet("convert", input, "-o", dir.File("plain.onnx"), "--strict", "--verify", "--input-size", "40");
        Assert.True(code == 0, stderr);
        Assert.Contains("EQUIVALENT", stdout);
        Assert.Equal(21, OnnxSummary.Read(dir.File("plain.onnx")).Opset);
    }

    [Fact]
    public void InspectReadsNoExternalDataAndCountsMacs()
    {
        using var dir = Fixture.Temp();
        File.Copy(Fixture.Path_("onnx/external/basic_external.onnx"), dir.File("e.onnx"));
        // The weights file is absent: inspect must not need it, convert must.
        var (code, stdout, stderr) = Rmnet("inspect", dir.File("e.onnx"), "--json", "--input-size", "64");
        Assert.True(code == 0, stderr);
        var root = Json(stdout);
        Assert.Equal(5, root.GetProperty("joins_found").GetInt32());
        var withData = Json(Rmnet("inspect", Fixture.Path_("onnx/external/basic_external.onnx"), "--json", "--input-size", "64").Out);
        Assert.Equal(withData.GetProperty("cost").GetProperty("macs").GetInt64(), root.GetProperty("cost").GetProperty("macs").GetInt64());
        Assert.Equal(ExitCodes.BadInput, Rmnet("convert", dir.File("e.onnx"), "-o", dir.File("p.onnx")).Code);
    }

    [Fact]
    public void StructureReadingLeavesLargeWeightsUnreadAndCountsTheSame()
    {
        string path = Onnx("preact_basic_narrow_opset13");
        var full = OnnxModelFile.Load(path);
        var structure = OnnxModelFile.LoadStructure(path);
        Assert.Equal(full.Graph.Initializer.Select(t => (t.Name, t.Dims.ToArray().Aggregate(1L, (a, b) => a * b))),
            structure.Graph.Initializer.Select(t => (t.Name, t.Dims.ToArray().Aggregate(1L, (a, b) => a * b))));
        var large = structure.Graph.Initializer.Where(t => full.Graph.Initializer.First(f => f.Name == t.Name).CalculateSize() > 4096).ToList();
        Assert.NotEmpty(large);
        Assert.All(large, t => Assert.True(t.RawData.IsEmpty && t.FloatData.Count == 0, t.Name));
        Assert.Contains(structure.Graph.Initializer, t => !t.RawData.IsEmpty);   // small tensors keep their values
        Assert.Equal(full.Graph.Node.Select(n => n.ToString()), structure.Graph.Node.Select(n => n.ToString()));
        // The summary agrees with one computed from the fully loaded graph.
        var g = new OnnxGraph(full.Graph, path);
        var summary = OnnxSummary.Read(path, 64);
        Assert.Equal(OnnxCost.Parameters(g), summary.Parameters);
        Assert.Equal(OnnxCost.MultiplyAccumulates(g, 64), summary.Macs);
        Assert.Equal(ResidualJoins.Find(g).Count, summary.Joins.Count);
    }

    [Theory]
    [InlineData("regnet_y_narrow_opset13")]       // SE gate as Mul's first operand: the Mul's size is the gated map's
    [InlineData("resnet_d_narrow_opset13")]       // AvgPool with ceil_mode before the projection
    [InlineData("unplainable_narrow_opset13")]
    [InlineData("resnet18_fresh_narrow_opset17")]
    public void OnnxMacsEqualPyTorchsCount(string name)
    {
        // PyTorch's own count (forward hooks on every Conv2d and Linear), made by the fixture script at 32x32.
        var reference = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Fixture.Path_("onnx/joins_macs.json"))).RootElement;
        var summary = OnnxSummary.Read(Onnx(name), reference.GetProperty("input_size").GetInt32());
        Assert.Equal(0, summary.UncountedConvs);
        Assert.Equal(reference.GetProperty("macs").GetProperty(name).GetInt64(), summary.Macs);
    }

    [Theory]
    [InlineData("preact_basic_narrow")]
    [InlineData("mobilenet_v2_narrow")]
    [InlineData("se_basic_narrow")]
    [InlineData("iresnet18_narrow")]
    public void OnnxMacsAgreeWithTheCheckpointCostModel(string name)
    {
        // PyTorch's export of a family fixture against the checkpoint's own cost model, at 64x64 (IResNet: its fixed 112).
        var onnx = Json(Rmnet("inspect", Onnx($"{name}_opset13"), "--json", "--input-size", "64").Out);
        var checkpoint = Json(Rmnet("inspect", Fixture.Path_($"{name}.pth"), "--json", "--input-size", "64").Out);
        long onnxMacs = onnx.GetProperty("cost").GetProperty("macs").GetInt64();
        long ckptMacs = checkpoint.GetProperty("cost").GetProperty("macs").GetInt64();
        Assert.True(onnxMacs > 0);
        Assert.Equal(ckptMacs, onnxMacs);
    }
}
