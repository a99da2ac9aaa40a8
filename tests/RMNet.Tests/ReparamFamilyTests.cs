using System.Text.Json;
using RMNet.Cli;
using RMNet.Lowering;
using RMNet.Onnx;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;

namespace RMNet.Tests;

/// <summary>
/// Reparameterisable families lowered into the graph, whose branch-merge pass fuses each block's parallel branches
/// into one conv: timm's MobileOne, and ACNet's ACBlock and DBB's DiverseBranchBlock in the DBB repository's
/// MobileNet (tools/fixtures/make_fixtures.py --reparam). Each fixture is saved in train form and in deploy form (one
/// fused conv per block), with PyTorch's outputs of both.
/// </summary>
public class ReparamFamilyTests(ITestOutputHelper output)
{
    /// <summary>Fixture, its description in train form, and its convs once converted (one a block, plus an SE gate's two).</summary>
    public static IEnumerable<object[]> Families() => new[]
    {
        new object[] { "timm_mobileone_narrow", "timm MobileOne, stages of 2-4-2-2 blocks, 3 kxk branches, 5 classes", 11 },
        // MobileOne-S4's layout: SE (timm's attn) after the sum in 4 blocks, kept as gates: 13 block convs plus 2 per gate.
        new object[] { "timm_mobileone_se_narrow", "timm MobileOne, stages of 2-4-4-2 blocks, 1 kxk branch, 5 classes", 13 + 8 },
        new object[] { "acnet_mobilenet_narrow", "ACNet (ACBlock) MobileNet (the DBB repository's MobileV1), 6 blocks, 5 classes", 13 },
        new object[] { "dbb_mobilenet_narrow", "DBB (DiverseBranchBlock) MobileNet (the DBB repository's MobileV1), 6 blocks, 5 classes", 13 },
    };

    public static IEnumerable<object[]> Forms() =>
        from family in Families()
        from deploy in new[] { false, true }
        select new[] { family[0], deploy };

    public static IEnumerable<object[]> Conversions() =>
        from family in Families()
        from deploy in new[] { false, true }
        from mode in new[] { "grouped", "dense" }
        select new[] { family[0], family[2], deploy, mode };

    static string Checkpoint(string name, bool deploy) => Fixture.Path_($"{name}{(deploy ? "_deploy" : "")}.pth");

    /// <summary>
    /// The ONNX model <paramref name="onnx"/> run on both fixture inputs (the second of an odd size) equals PyTorch's
    /// output of the train form, or of the deploy module, within 1e-5 relative.
    /// </summary>
    void AgreesWithPyTorch(string onnx, string name, bool deploy, string what)
    {
        using var ort = new OnnxRuntimeRunner(onnx);
        var io = Fixture.Io(name);
        foreach (var input in new[] { "input", "input_odd" })
        {
            var r = Equivalence.Measure(io[(deploy ? "output_deploy" : "output") + input.Replace("input", "")], ort.Run(io[input]), 1e-5);
            output.WriteLine($"{name} {(deploy ? "deploy" : "train")} {input}: {what} vs PyTorch rel {r.MaxRelError:E2}");
            Assert.True(r.Passed, $"{input}: {r.MaxRelError}");
        }
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void TheLoweredGraphIsTheNetworkPyTorchRan(string name, bool deploy)
    {
        using var sd = IO.CheckpointReader.Read(Checkpoint(name, deploy));
        using var lowered = CheckpointLowerings.Find(sd);
        Assert.NotNull(lowered);
        Assert.Equal(deploy, lowered!.Description.Contains("(deploy form)"));
        using var dir = Fixture.Temp();
        OnnxModelFile.Save(lowered.Lower(), dir.File("original.onnx"));
        AgreesWithPyTorch(dir.File("original.onnx"), name, deploy, "lowered graph");
    }

    [Theory]
    [MemberData(nameof(Conversions))]
    public void ConvertsToOneConvPerBlockThatEqualsPyTorch(string name, int blocks, bool deploy, string mode)
    {
        using var dir = Fixture.Temp();
        string plain = dir.File("plain.onnx");
        var (code, stdout, stderr) = CliHarness.Rmnet("convert", Checkpoint(name, deploy), "-o", plain, "--arch", "auto", "--rm-mode", mode,
            "--verify", "--input-size", "64", "--strict", "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(0, json.GetProperty("joins_remaining").GetInt32());
        var g = new OnnxGraph(OnnxModelFile.Load(plain).Graph, plain);
        // Every block's branches are one conv (a deploy-form checkpoint passes through as it is), and no sum is left.
        Assert.Equal(blocks, g.Graph.Node.Count(n => n.OpType == "Conv"));
        Assert.DoesNotContain(g.Graph.Node, n => n.OpType is "Add" or "Sum" or "BatchNormalization" or "AveragePool");
        AgreesWithPyTorch(plain, name, deploy, $"{mode} plain");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void InspectNamesTheFamily(string name, string description, int blocks)
    {
        var inspect = CliHarness.Inspect(Checkpoint(name, false));
        Assert.Equal(description, inspect.GetProperty("architecture").GetString());
        output.WriteLine($"{name}: {description}, {blocks} blocks, {inspect.GetProperty("joins_found").GetInt32()} sums");
        var deployed = CliHarness.Inspect(Checkpoint(name, true)).GetProperty("architecture").GetString()!;
        Assert.Contains("(deploy form)", deployed);
        Assert.StartsWith(description.Split(',')[0].Split(" (the")[0], deployed);
    }

    [Theory]
    [InlineData("timm_mobileone_narrow", "stages.1.2.conv_kxk.1.bn.", "missing key 'stages.1.2.conv_kxk.1.bn.weight'")]
    [InlineData("acnet_mobilenet_narrow", "stem.0.depthwise.hor_bn.", "missing key 'stem.0.depthwise.hor_bn.weight'")]
    [InlineData("dbb_mobilenet_narrow", "conv1.dbb_1x1_kxk.bn1.bn.", "missing key 'conv1.dbb_1x1_kxk.bn1.bn.weight'")]
    public void ABranchWithoutItsBatchNormIsRefusedInOneLine(string name, string removed, string message)
    {
        // A branch's conv without the BN after it: summed without it, the block would be another function.
        using var dir = Fixture.Temp();
        using (var sd = IO.CheckpointReader.Read(Checkpoint(name, false)))
            IO.StateDictFile.Save(dir.File("broken.pth"), sd.Where(kv => !kv.Key.StartsWith(removed, StringComparison.Ordinal)).Select(kv => (kv.Key, kv.Value)));
        foreach (var command in new[] { new[] { "convert", dir.File("broken.pth"), "-o", dir.File("plain.onnx"), "--verify" }, new[] { "inspect", dir.File("broken.pth") } })
        {
            var (code, _, stderr) = CliHarness.Rmnet(command);
            Assert.Equal(ExitCodes.BadInput, code);
            string error = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("rmnet: error:"));
            Assert.Contains("broken.pth", error);
            Assert.Contains(message, error);
        }
        Assert.False(File.Exists(dir.File("plain.onnx")));
    }

    [Fact]
    public void AnIdentityBasedConvOfTheWrongShapeIsRefusedNamingIt()
    {
        // DBB adds the identity (which the state dict does not hold) to idconv1's weight: it must be [C, C/groups, 1, 1].
        using var dir = Fixture.Temp();
        const string key = "conv1.dbb_1x1_kxk.idconv1.weight";
        using (var sd = IO.CheckpointReader.Read(Checkpoint("dbb_mobilenet_narrow", false)))
            IO.StateDictFile.Save(dir.File("bad.pth"), sd.Select(kv => (kv.Key, kv.Key == key ? TorchSharp.torch.ones(3, 2, 1, 1) : kv.Value)));
        var (code, _, stderr) = CliHarness.Rmnet("convert", dir.File("bad.pth"), "-o", dir.File("plain.onnx"));
        Assert.Equal(ExitCodes.BadInput, code);
        string error = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("rmnet: error:"));
        Assert.Contains($"key '{key}' has shape [3, 2, 1, 1], expected [3, 3, 1, 1] (an identity-based 1x1 conv)", error);
        Assert.False(File.Exists(dir.File("plain.onnx")));
    }

    /// <summary>A network of parallel branches alone reports its merged sums, not "0 blocks recognised" (a new user's puzzle).</summary>
    [Fact]
    public void AMultiBranchConversionReportsItsMergedSums()
    {
        using var dir = Fixture.Temp();
        var (code, stdout, stderr) = CliHarness.Rmnet("convert", Checkpoint("timm_mobileone_narrow", false), "-o", dir.File("plain.onnx"));
        Assert.True(code == 0, stderr);
        Assert.Contains("residual joins made plain, 0 gates kept", stdout);
        Assert.DoesNotContain("blocks recognised", stdout);
        Assert.Contains("parallel-branch sums merged into one conv", stdout);
    }

    [Fact]
    public void TheUnrecognisedCheckpointMessageNamesTheFamilies()
    {
        using var dir = Fixture.Temp();
        IO.StateDictFile.Save(dir.File("other.pth"), new[] { ("blocks.0.weight", TorchSharp.torch.ones(4, 4, 1, 1)) });
        var (code, _, error) = CliHarness.Rmnet("inspect", dir.File("other.pth"));
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("'stem.conv_kxk.0.conv.weight' (timm MobileOne)", error);
        Assert.Contains("'conv1.square_conv.weight' (ACNet (ACBlock) MobileNet)", error);
        Assert.Contains("'conv1.dbb_origin.conv.weight' (DBB (DiverseBranchBlock) MobileNet)", error);
    }
}
