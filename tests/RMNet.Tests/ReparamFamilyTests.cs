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
/// MobileNet (tools/fixtures/make_fixtures.py --reparam) and ResNet (--dbb-resnet; there the residual passes then remove
/// the shortcuts), and ACBlock in ACNet's own repository's RCNet (--acnet-rcnet) and ImageNet ResNet (--acnet-resnet). Each fixture is saved in train form and in deploy form (one fused conv per block), with PyTorch's
/// outputs of both.
/// </summary>
public class ReparamFamilyTests(ITestOutputHelper output)
{
    /// <summary>
    /// Fixture, its description in train form, and its convs once converted (one a block, plus an SE gate's two; in a
    /// ResNet one per conv layer, its projections merged into the blocks' first convs).
    /// </summary>
    public static IEnumerable<object[]> Families() => new[]
    {
        new object[] { "timm_mobileone_narrow", "timm MobileOne, stages of 2-4-2-2 blocks, 3 kxk branches, 5 classes", 11 },
        // MobileOne-S4's layout: SE (timm's attn) after the sum in 4 blocks, kept as gates: 13 block convs plus 2 per gate.
        new object[] { "timm_mobileone_se_narrow", "timm MobileOne, stages of 2-4-4-2 blocks, 1 kxk branch, 5 classes", 13 + 8 },
        new object[] { "acnet_mobilenet_narrow", "ACNet (ACBlock) MobileNet (the DBB repository's MobileV1), 6 blocks, 5 classes", 13 },
        new object[] { "dbb_mobilenet_narrow", "DBB (DiverseBranchBlock) MobileNet (the DBB repository's MobileV1), 6 blocks, 5 classes", 13 },
        // The stem and 5 Basic blocks of two convs, or 5 Bottlenecks of three.
        new object[] { "acnet_resnet_basic_narrow", "ACNet (ACBlock) ResNet (the DBB repository's), Basic blocks 2-1-1-1, 5 classes", 1 + 5 * 2 },
        new object[] { "acnet_resnet_bottleneck_narrow", "ACNet (ACBlock) ResNet (the DBB repository's), Bottleneck blocks 1-2-1-1, 5 classes", 1 + 5 * 3 },
        new object[] { "dbb_resnet_basic_narrow", "DBB (DiverseBranchBlock) ResNet (the DBB repository's), Basic blocks 2-1-1-1, 5 classes", 1 + 5 * 2 },
        new object[] { "dbb_resnet_bottleneck_narrow", "DBB (DiverseBranchBlock) ResNet (the DBB repository's), Bottleneck blocks 1-2-1-1, 5 classes", 1 + 5 * 3 },
        // ACNet's own repository's RCNet (--acnet-rcnet): the stem and 6 RCBlocks of two convs.
        new object[] { "acnet_rcnet_narrow", "ACNet (ACBlock) RCNet (the ACNet repository's CIFAR ResNet), RCBlocks 2-2-2, 10 classes", 1 + 6 * 2 },
        // Its ImageNet ResNet (--acnet-resnet): the 7x7 stem (a plain ConvBN) and 5 Basic blocks of two convs.
        new object[] { "acnet_imagenet_resnet_narrow", "ACNet (ACBlock) ResNet (the ACNet repository's), Basic blocks 2-1-1-1, 5 classes", 1 + 5 * 2 },
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
        // A graph that fixes its size (ACNet's RCNet and ImageNet ResNet, whose heads pool a fixed window) runs at that size only.
        var inputs = new[] { "input", "input_odd" }.Where(i => ort.InputShape[2] <= 0 || ort.InputShape[2] == io[i].shape[2] && ort.InputShape[3] == io[i].shape[3]).ToList();
        Assert.NotEmpty(inputs);
        foreach (var input in inputs)
        {
            var r = Equivalence.Measure(io[(deploy ? "output_deploy" : "output") + input.Replace("input", "")], ort.Run(io[input]), 1e-5);
            output.WriteLine($"{name} {(deploy ? "deploy" : "train")} {input}: {what} vs PyTorch rel {r.MaxRelError:E2}");
            Assert.True(r.Passed, $"{input}: {r.MaxRelError}");
        }
    }

    /// <summary>
    /// ACNet's heads pool a fixed window (7x7 of stride 7, RCNet's 8x8): on a larger last map PyTorch averages the top-left
    /// window only, which no global pool is, so the graph fixes the input size and nothing is ever checked at another.
    /// </summary>
    [Theory]
    [InlineData("acnet_imagenet_resnet_narrow", 224, 256)]
    [InlineData("acnet_rcnet_narrow", 32, 40)]
    public void AHeadThatPoolsAFixedWindowFixesTheInputSize(string name, int size, int other)
    {
        using var dir = Fixture.Temp();
        string plain = dir.File("plain.onnx");
        Assert.Equal(0, CliHarness.Rmnet("convert", Checkpoint(name, false), "-o", plain, "--quiet").Code);
        var (code, stdout, stderr) = CliHarness.Rmnet("verify", Checkpoint(name, false), plain, "--input-size", other.ToString(), "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Contains($"[3, {size}, {size}] ({size}x{size} fixed by the model, not --input-size {other})", stdout);
        using var ort = new OnnxRuntimeRunner(plain);
        Assert.Equal(new[] { size, size }, ort.InputShape[2..]);
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
    [InlineData("acnet_resnet_basic_narrow", "stage2.0.conv1.hor_bn.", "missing key 'stage2.0.conv1.hor_bn.weight'")]
    [InlineData("acnet_rcnet_narrow", "stage2.1.conv1.acb.ver_bn.", "missing key 'stage2.1.conv1.acb.ver_bn.weight'")]
    [InlineData("dbb_resnet_bottleneck_narrow", "stage3.0.conv2.dbb_1x1_kxk.bn1.bn.", "missing key 'stage3.0.conv2.dbb_1x1_kxk.bn1.bn.weight'")]
    // A ConvBN (the ResNet's 1x1 convs and shortcuts) without its BN is not taken for a deploy-form conv: that has a bias.
    [InlineData("dbb_resnet_bottleneck_narrow", "stage2.0.shortcut.bn.", "missing key 'stage2.0.shortcut.bn.weight'")]
    [InlineData("acnet_resnet_bottleneck_narrow", "stage1.0.conv3.bn.", "missing key 'stage1.0.conv3.bn.weight'")]
    [InlineData("acnet_rcnet_narrow", "stage3.0.shortcut.bn.", "missing key 'stage3.0.shortcut.bn.weight'")]
    [InlineData("acnet_imagenet_resnet_narrow", "conv1.bn.", "missing key 'conv1.bn.weight'")]
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
        Assert.Contains("'stage0.conv1.conv.weight' (ACNet (ACBlock) and DBB (DiverseBranchBlock) ResNets (the DBB repository's))", error);
        Assert.Contains("'conv1.acb.square_conv.weight' (ACNet (ACBlock) RCNet (the ACNet repository's CIFAR ResNet))", error);
        Assert.Contains("'conv1.conv.weight' (ACNet (ACBlock) ResNet (the ACNet repository's))", error);
    }

    const string BasicShortcuts = "stage1.0.add identity, stage1.1.add identity, stage2.0.add projection, stage3.0.add projection, stage4.0.add projection";
    // Bottleneck's stage1.0 widens 4x at stride 1: resnet.py projects there too.
    const string BottleneckShortcuts = "stage1.0.add projection, stage2.0.add projection, stage2.1.add identity, stage3.0.add projection, stage4.0.add projection";

    // RCNet projects only where the stride is not 1: the first blocks of stage2 and stage3.
    const string RcNetShortcuts = "stage1.0.add identity, stage1.1.add identity, stage2.0.add projection, stage2.1.add identity, stage3.0.add projection, stage3.1.add identity";

    /// <summary>The DBB repository's ResNets and ACNet's RCNet: their residual blocks, their shortcuts and their blocks' merged branch sums.</summary>
    [Theory]
    [InlineData("acnet_resnet_basic_narrow", false, 10, BasicShortcuts)]
    [InlineData("dbb_resnet_basic_narrow", false, 10, BasicShortcuts)]
    [InlineData("acnet_resnet_bottleneck_narrow", false, 5, BottleneckShortcuts)]
    [InlineData("dbb_resnet_bottleneck_narrow", false, 5, BottleneckShortcuts)]
    [InlineData("dbb_resnet_basic_narrow", true, 0, BasicShortcuts)]
    [InlineData("acnet_resnet_bottleneck_narrow", true, 0, BottleneckShortcuts)]
    [InlineData("acnet_rcnet_narrow", false, 13, RcNetShortcuts)]   // The stem is a block too.
    [InlineData("acnet_rcnet_narrow", true, 0, RcNetShortcuts)]
    [InlineData("acnet_imagenet_resnet_narrow", false, 10, BasicShortcuts)]
    [InlineData("acnet_imagenet_resnet_narrow", true, 0, BasicShortcuts)]
    public void EveryJoinOfTheResNetIsReportedPlain(string name, bool deploy, int merged, string shortcuts)
    {
        using var dir = Fixture.Temp();
        var (code, stdout, stderr) = CliHarness.Rmnet("convert", Checkpoint(name, deploy), "-o", dir.File("plain.onnx"), "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        // Each 3x3 block's branch sum became one conv (a Basic block has two such blocks, a Bottleneck one).
        Assert.Equal(merged, json.GetProperty("merged_branches").GetInt32());
        var joins = json.GetProperty("joins").EnumerateArray().ToList();
        Assert.Equal(json.GetProperty("joins_found").GetInt32(), joins.Count);
        Assert.All(joins, j => Assert.Equal("plain", j.GetProperty("status").GetString()));
        Assert.Equal(0, json.GetProperty("joins_remaining").GetInt32());
        // Every residual block, with its repository's shortcuts (resnet.py projects where the stride or the width changes).
        int residualBlocks = shortcuts.Split(", ").Length;
        Assert.Equal(residualBlocks, json.GetProperty("blocks_found").GetInt32());
        Assert.Equal(residualBlocks, json.GetProperty("blocks_plain").GetInt32());
        var blocks = json.GetProperty("graph_blocks").EnumerateArray().ToList();
        Assert.Equal(shortcuts, string.Join(", ", blocks.Select(b => $"{b.GetProperty("name").GetString()} {b.GetProperty("shortcut").GetString()}")));
        Assert.All(blocks, b => Assert.True(b.GetProperty("plain").GetBoolean()));
        output.WriteLine($"{name} {(deploy ? "deploy" : "train")}: {joins.Count} joins plain, {merged} branch sums merged");
    }

    [Fact]
    public void ADeployFormResNetWithoutAProjectionIsRefusedNamingIt()
    {
        // resnet.py projects where a block halves the size: without that tensor the sum would not fit, and the message names it.
        using var dir = Fixture.Temp();
        using (var sd = IO.CheckpointReader.Read(Checkpoint("dbb_resnet_basic_narrow", true)))
            IO.StateDictFile.Save(dir.File("broken.pth"), sd.Where(kv => !kv.Key.StartsWith("stage3.0.shortcut.", StringComparison.Ordinal)).Select(kv => (kv.Key, kv.Value)));
        var (code, _, stderr) = CliHarness.Rmnet("convert", dir.File("broken.pth"), "-o", dir.File("plain.onnx"), "--verify");
        Assert.Equal(ExitCodes.BadInput, code);
        string error = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("rmnet: error:"));
        Assert.Contains("broken.pth", error);
        Assert.Contains("missing key 'stage3.0.shortcut.conv.weight'", error);
        Assert.False(File.Exists(dir.File("plain.onnx")));
    }

    [Fact]
    public void AResNetWhoseBlocksAreNoKnownKindIsNotRecognisedInOneLine()
    {
        // The stem's names and the classifier, but a first block that is neither ACB nor DBB: the layout's message, naming the file.
        using var dir = Fixture.Temp();
        using (var sd = IO.CheckpointReader.Read(Checkpoint("acnet_resnet_basic_narrow", false)))
            IO.StateDictFile.Save(dir.File("other.pth"), sd.Select(kv => (kv.Key.Replace("stage1.0.conv1.square_conv", "stage1.0.conv1.main_conv"), kv.Value)));
        var (code, _, stderr) = CliHarness.Rmnet("inspect", dir.File("other.pth"));
        Assert.Equal(ExitCodes.BadInput, code);
        string error = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("rmnet: error:"));
        Assert.Contains("other.pth", error);
        Assert.Contains("closest: ACNet (ACBlock) and DBB (DiverseBranchBlock) ResNets (the DBB repository's), which starts so but whose other names did not fit", error);
    }
}
