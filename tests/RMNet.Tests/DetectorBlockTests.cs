using System.Text.Json;
using RMNet.Cli;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// The partial conversion of detectors' re-parameterisable blocks (YOLOv7's RepConv, YOLOv6's RepVGGBlock), against
/// the deploy-form state dicts PyTorch made with the real code's own fuse procedures (tools/fixtures/make_fixtures.py --yolo).
/// </summary>
public class DetectorBlockTests(ITestOutputHelper output)
{
    /// <summary>A file's tensors in file order, under the names the file has (a wrapper prefix the reader removed put back).</summary>
    static List<(string Name, Tensor Tensor)> Named(string path)
    {
        var sd = IO.CheckpointReader.Read(path);
        return sd.Select(kv => ((sd.RemovedPrefix ?? "") + kv.Key, kv.Value)).ToList();
    }

    static double RelativeError(Tensor expected, Tensor actual)
    {
        var e = expected.to_type(ScalarType.Float64);
        return (actual.to_type(ScalarType.Float64) - e).abs().max().item<double>() / Math.Max(e.abs().max().item<double>(), 1e-300);
    }

    [Theory]
    [InlineData("yolov7_repconv.pth", "yolov7_repconv_deploy.pth", "deploy.pth", 4, 18, 1e-6)]
    [InlineData("yolov7_repconv.pth", "yolov7_repconv_deploy.pth", "deploy.safetensors", 4, 18, 1e-6)]
    [InlineData("yolov6_repvgg.pth", "yolov6_repvgg_deploy.pth", "deploy.safetensors", 5, 8, 1e-6)]
    [InlineData("yolov6_repvgg.pth", "yolov6_repvgg_deploy.pth", "deploy.pth", 5, 8, 1e-6)]
    // YOLOv7's training checkpoint: whole modules in half precision under 'model' (and 'ema'); the blocks stay half precision,
    // PyTorch's fused them in float32 from the same half weights and rounded to half: they may differ in the last half bit.
    [InlineData("yolov7_repconv_whole_half.pt", "yolov7_repconv_whole_half_deploy.pth", "deploy.pth", 4, 18, 1e-3)]
    // YOLOv6's QARepVGGBlock / V2 (make_fixtures.py --qarep), whose identity and average pool only a whole module records:
    // `torch.save(model)` in float32, and a training checkpoint's half-precision 'ema'. The BN after each sum is kept.
    [InlineData("yolov6_qarep_whole.pt", "yolov6_qarep_whole_deploy.pth", "deploy.pth", 6, 38, 1e-6)]
    [InlineData("yolov6_qarep_ckpt_half.pt", "yolov6_qarep_ckpt_half_deploy.pth", "deploy.safetensors", 6, 38, 1e-3)]
    public void TheFusedBlocksArePyTorchsAndEveryOtherTensorIsKept(string checkpoint, string expected, string file, int fused, int kept, double tolerance)
    {
        using var dir = Fixture.Temp();
        var (code, stdout, stderr) = CliHarness.Rmnet("convert", Fixture.Path_(checkpoint), "-o", dir.File(file), "--verify", "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal((fused, 0, kept), (json.GetProperty("blocks_fused").GetInt32(), json.GetProperty("blocks_already_deploy").GetInt32(), json.GetProperty("tensors_kept").GetInt32()));
        Assert.True(json.GetProperty("verification").GetProperty("passed").GetBoolean());

        var ours = Named(dir.File(file));
        var pytorch = Named(Fixture.Path_(expected));
        // PyTorch's deploy-form state dict: the same names in the same order, the same dtypes.
        Assert.Equal(pytorch.Select(t => t.Name), ours.Select(t => t.Name));
        var original = Named(Fixture.Path_(checkpoint)).ToDictionary(t => t.Name, t => t.Tensor);
        double worst = 0;
        foreach (var ((name, mine), (_, theirs)) in ours.Zip(pytorch))
        {
            Assert.Equal(theirs.dtype, mine.dtype);
            Assert.Equal(theirs.shape, mine.shape);
            if (name.Contains(".rbr_reparam."))
            {
                double error = RelativeError(theirs, mine);
                worst = Math.Max(worst, error);
                Assert.True(error <= tolerance, $"{name}: {error}");
            }
            else
                Assert.Equal(original[name].contiguous().bytes.ToArray(), mine.contiguous().bytes.ToArray());   // every other tensor byte for byte
        }
        output.WriteLine($"{checkpoint} -> {file}: {fused} blocks fused, max rel error against PyTorch's fused tensors {worst:E2}");
    }

    [Theory]
    [InlineData("yolov7_repconv")]
    [InlineData("yolov6_repvgg")]
    [InlineData("yolov6_qarep")]
    public void TheReferenceDeployFormRunsAsTheTrainingFormInPyTorch(string name)
    {
        // The fixture's fuse procedure is the real one: PyTorch's detector gives the same output in both forms.
        var io = Fixture.Io(name);
        double error = RelativeError(io["output"], io["output_deploy"]);
        output.WriteLine($"{name}: PyTorch train vs deploy rel {error:E2}");
        Assert.True(error <= 1e-5, $"{error}");
    }

    [Fact]
    public void ADeployFormCheckpointPassesThroughAndVerifiesAgainstItsOriginal()
    {
        using var dir = Fixture.Temp();
        string deploy = Fixture.Path_("yolov7_repconv_deploy.pth");
        var (code, stdout, stderr) = CliHarness.Rmnet("convert", deploy, "-o", dir.File("again.pth"), "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Contains("0 re-parameterisable blocks fused, 4 already in deploy form, 26 tensors kept as they are", stdout);
        Assert.Equal(Named(deploy).Select(t => (t.Name, t.Tensor.contiguous().bytes.ToArray())), Named(dir.File("again.pth")).Select(t => (t.Name, t.Tensor.contiguous().bytes.ToArray())),
            new TupleComparer());
        var inspect = CliHarness.Inspect(deploy);
        Assert.Equal("deploy", inspect.GetProperty("form").GetString());

        // PyTorch's own deploy form verifies against the training checkpoint block by block; another detector's does not.
        var (verified, verifyOut, verifyErr) = CliHarness.Rmnet("verify", Fixture.Path_("yolov7_repconv.pth"), deploy, "--json", "--quiet");
        Assert.True(verified == 0, verifyErr);
        var report = JsonDocument.Parse(verifyOut).RootElement.GetProperty("verification");
        Assert.Equal(4, report.GetProperty("blocks").GetArrayLength());
        Assert.True(report.GetProperty("max_rel_error").GetDouble() < 1e-6);
        Assert.Equal(ExitCodes.NotEquivalent, CliHarness.Rmnet("verify", Fixture.Path_("yolov7_repconv.pth"), Fixture.Path_("yolov6_repvgg_deploy.pth"), "--quiet").Code);
    }

    sealed class TupleComparer : IEqualityComparer<(string, byte[])>
    {
        public bool Equals((string, byte[]) a, (string, byte[]) b) => a.Item1 == b.Item1 && a.Item2.SequenceEqual(b.Item2);
        public int GetHashCode((string, byte[]) a) => a.Item1.GetHashCode();
    }

    [Fact]
    public void InspectListsTheBlocksUnderTheFilesNames()
    {
        var json = CliHarness.Inspect(Fixture.Path_("yolov7_repconv_whole_half.pt"));
        Assert.Equal("detector-blocks", json.GetProperty("family").GetString());
        Assert.Equal("multi-branch", json.GetProperty("form").GetString());
        Assert.Equal("float16", json.GetProperty("weights_dtype").GetString());
        Assert.Equal("ema", json.GetProperty("weights_key").GetString());   // 'model' and 'ema': the one YOLO deploys
        var blocks = json.GetProperty("blocks").EnumerateArray().ToList();
        Assert.Equal(new[] { "model.1", "model.2", "model.4", "model.5" }, blocks.Select(b => b.GetProperty("name").GetString()));
        Assert.Equal(new[] { false, true, false, true }, blocks.Select(b => b.GetProperty("identity").GetBoolean()));
        Assert.Equal(18, json.GetProperty("other_tensors").GetInt32());
    }

    [Fact]
    public void InspectNamesEachQaRepVggBlocksBranchesFromTheWholeModule()
    {
        var json = CliHarness.Inspect(Fixture.Path_("yolov6_qarep_whole.pt"));
        Assert.Equal("detector-blocks", json.GetProperty("family").GetString());
        var blocks = json.GetProperty("blocks").EnumerateArray().ToList();
        Assert.Equal(new[] { "stem", "ERBlock_2.0", "ERBlock_2.1.conv1", "ERBlock_2.1.block.0", "ERBlock_2.2", "ERBlock_2.3" }, blocks.Select(b => b.GetProperty("name").GetString()));
        // Strided blocks have neither identity nor pool; V2 blocks that keep their width have both; the V1 block only the identity.
        Assert.Equal(new[] { "3x3 + 1x1", "3x3 + 1x1", "3x3 + 1x1 + identity + avg", "3x3 + 1x1 + identity + avg", "3x3 + 1x1 + identity + avg", "3x3 + 1x1 + identity" },
            blocks.Select(b => b.GetProperty("form").GetString()));
        Assert.Equal(new[] { "YOLOv6 QARepVGGBlock", "YOLOv6 QARepVGGBlockV2" }, blocks.Select(b => b.GetProperty("style").GetString()).Distinct());
        Assert.Equal(4, blocks[4].GetProperty("in_channels_per_group").GetInt64());   // the grouped V2 block
    }

    [Fact]
    public void VerifyOfADetectorTakesSamplesAndSizeForItsBlocksAndRefusesImages()
    {
        string original = Fixture.Path_("yolov6_qarep_whole.pt"), deploy = Fixture.Path_("yolov6_qarep_whole_deploy.pth");
        var (code, stdout, stderr) = CliHarness.Rmnet("verify", original, deploy, "--samples", "3", "--input-size", "16", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Contains("verification: 6 blocks on 3 seeded 16x16 inputs each", stdout);
        Assert.Contains("on 2 seeded 9x9 inputs each", CliHarness.Rmnet("verify", original, deploy, "--quiet").Out);
        var (refused, _, error) = CliHarness.Rmnet("verify", original, deploy, "--input", Fixture.Path_("yolov6_qarep.io.pth"));
        Assert.Equal(ExitCodes.BadInput, refused);
        Assert.Contains("--input runs images through a network; a detector's blocks are checked one by one on seeded inputs", error);
    }

    [Fact]
    public void VerifyTakesADeployFileWhoseOtherConvsHaveTheirBnFoldedAsTheProjectsFuseStepsLeaveThem()
    {
        // YOLOv6's fuse_model folds every ConvModule's BN (here the neck's) besides fusing the blocks.
        string original = Fixture.Path_("yolov6_qarep_whole.pt"), fusedAll = Fixture.Path_("yolov6_qarep_whole_fused_all.pth");
        var (code, stdout, stderr) = CliHarness.Rmnet("verify", original, fusedAll, "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var report = JsonDocument.Parse(stdout).RootElement.GetProperty("verification");
        Assert.Equal(1, report.GetProperty("folded_conv_bns").GetInt32());
        Assert.Empty(report.GetProperty("differing_tensors").EnumerateArray());

        // YOLOv6's own flow on its half-precision checkpoint: made float32, every ConvModule fused, then the blocks. The
        // other tensors hold the same values in float32; the half blocks are held to float16's tolerance.
        var (fromHalf, halfOut, halfErr) = CliHarness.Rmnet("verify", Fixture.Path_("yolov6_qarep_ckpt_half.pt"), Fixture.Path_("yolov6_qarep_ckpt_half_deploy_float32.pth"), "--quiet");
        Assert.True(fromHalf == 0, halfErr);
        Assert.Contains("(tolerance 1.00E-02): EQUIVALENT", halfOut);
        Assert.Contains("of them in a wider type, the same values", halfOut);
        Assert.Contains("1 conv outside the blocks with its BN folded in", halfOut);

        // A fold that is not the conv and its BN fails, naming the conv.
        using var dir = Fixture.Temp();
        using var sd = IO.CheckpointReader.Read(fusedAll);
        sd["neck.conv.bias"][0] = sd["neck.conv.bias"][0] + 0.5f;
        IO.StateDictFile.Save(dir.File("bad.pth"), sd.Select(kv => (kv.Key, kv.Value)));
        var (bad, _, error) = CliHarness.Rmnet("verify", original, dir.File("bad.pth"), "--quiet");
        Assert.Equal(ExitCodes.NotEquivalent, bad);
        Assert.Contains("'neck.conv' is not its conv with the BN folded in", error);
    }

    [Fact]
    public void AQaRepVggPoolThatIsNotV2sIsRefusedNamingIt()
    {
        // A whole module's rbr_avg that does not count its padding would make the 1/9 taps wrong at the border.
        using var original = IO.CheckpointReader.Read(Fixture.Path_("yolov6_qarep_whole.pt"));
        var modules = original.SavedModules.ToDictionary(kv => kv.Key, kv => kv.Value);
        var pool = modules["ERBlock_2.2.rbr_avg"];
        modules["ERBlock_2.2.rbr_avg"] = pool with { Attributes = new Dictionary<string, object>(pool.Attributes) { ["count_include_pad"] = false } };
        using var edited = new StateDict(original.Source) { SavedModules = modules };
        foreach (var (k, v) in original) edited.Add(k, v);
        var e = Assert.Throws<ModelInputException>(() => RepBlocks.RepBlockFinder.Find(edited));
        Assert.Contains("block 'ERBlock_2.2': its 'rbr_avg' is not QARepVGGBlockV2's AvgPool2d(3, stride=1, padding=1) counting its padding", e.Message);
        Assert.Contains("count_include_pad=False", e.Message);
    }

    /// <summary>
    /// YOLO's training checkpoints keep the trained weights under 'model' and the averaged ones they deploy under 'ema'
    /// (their loaders read `ckpt.get('ema') or ckpt['model']`): rmnet reads 'ema' too, 'model' once 'ema' is stripped
    /// (None), and --weights-key picks either.
    /// </summary>
    [Theory]
    [InlineData("yolov7_repconv_ema.pt", null, "ema", "0.conv.weight")]
    [InlineData("yolov7_repconv_ema.pt", "model", "model", "0.conv.weight")]
    [InlineData("yolov7_repconv_stripped.pt", null, "model", "0.conv.weight")]
    [InlineData("yolov6_qarep_model_none.pt", null, "ema", "neck.conv.weight")]
    public void ATrainingCheckpointsEmaIsWhatIsRead(string file, string? weightsKey, string read, string kept)
    {
        var json = weightsKey is null ? CliHarness.Inspect(Fixture.Path_(file)) : CliHarness.Inspect(Fixture.Path_(file), "--weights-key", weightsKey);
        Assert.Equal(read, json.GetProperty("weights_key").GetString());
        using var dir = Fixture.Temp();
        var args = new List<string> { "convert", Fixture.Path_(file), "-o", dir.File("deploy.pth") };
        if (weightsKey is not null) args.AddRange(new[] { "--weights-key", weightsKey });
        var (code, _, stderr) = CliHarness.Rmnet(args.ToArray());
        Assert.True(code == 0, stderr);
        Assert.Contains($"weights read from '{read}'", stderr);
        // The two copies differ: what was read is what was fused.
        using var fused = IO.CheckpointReader.Read(dir.File("deploy.pth"));
        using var source = IO.CheckpointReader.Read(Fixture.Path_(file), read);
        Assert.True(fused[kept].eq(source[kept]).all().item<bool>());   // the reader removes the prefix 'model.' of both
    }

    [Fact]
    public void BnEpsIsTheBatchNormsEpsilonWhereAStateDictDoesNotHoldIt()
    {
        // Both projects train with eps 1e-3; told 1e-5, the fused blocks are another network's, which PyTorch's are not.
        using var dir = Fixture.Temp();
        var (code, _, stderr) = CliHarness.Rmnet("convert", Fixture.Path_("yolov7_repconv.pth"), "-o", dir.File("wrong.pth"), "--bn-eps", "1e-5", "--quiet");
        Assert.True(code == 0, stderr);
        var pytorch = Named(Fixture.Path_("yolov7_repconv_deploy.pth")).ToDictionary(t => t.Name, t => t.Tensor);
        double error = Named(dir.File("wrong.pth")).Where(t => t.Name.Contains(".rbr_reparam.")).Max(t => RelativeError(pytorch[t.Name], t.Tensor));
        output.WriteLine($"--bn-eps 1e-5 against PyTorch's eps 1e-3: rel {error:E2}");
        Assert.True(error > 1e-4, $"{error}");
        // Verifying PyTorch's deploy form with the wrong epsilon fails.
        Assert.Equal(ExitCodes.NotEquivalent, CliHarness.Rmnet("verify", Fixture.Path_("yolov7_repconv.pth"), Fixture.Path_("yolov7_repconv_deploy.pth"), "--bn-eps", "1e-5", "--quiet").Code);
    }

    public static IEnumerable<object[]> CorruptBlocks() => new[]
    {
        new object[] { "model.2.rbr_1x1.1.running_var", null!, "block 'model.2': missing tensor 'model.2.rbr_1x1.1.running_var' of a YOLOv7 RepConv" },
        new object[] { "model.4.rbr_1x1.0.weight", new long[] { 24, 16, 3, 3 }, "key 'model.4.rbr_1x1.0.weight' has shape [24, 16, 3, 3], expected [24, 16, 1, 1] as its block's 3x3 kernel" },
        new object[] { "model.5.rbr_identity.weight", new long[] { 7 }, "key 'model.5.rbr_identity.weight' has shape [7], expected [24]" },
    };

    [Theory]
    [MemberData(nameof(CorruptBlocks))]
    public void ACorruptBlockIsRefusedInOneLineAndNothingIsWritten(string key, long[]? shape, string message)
    {
        using var dir = Fixture.Temp();
        var named = Named(Fixture.Path_("yolov7_repconv.pth"));
        IO.StateDictFile.Save(dir.File("bad.pth"), named.Where(t => shape is not null || t.Name != key)
            .Select(t => (t.Name, t.Name == key ? ones(shape!) : t.Tensor)));
        var (code, stdout, stderr) = CliHarness.Rmnet("convert", dir.File("bad.pth"), "-o", dir.File("deploy.pth"));
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains(message, stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("rmnet: error:"));
        Assert.DoesNotContain("   at ", stderr);
        Assert.Equal(new[] { "bad.pth" }, Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void WhatRmnetCannotDoWithADetectorIsRefusedSayingWhy()
    {
        using var dir = Fixture.Temp();
        // QARepVGG: its identity and average-pool branches have no tensors.
        var (qa, _, qaError) = CliHarness.Rmnet("convert", Fixture.Path_("yolov6_qarepvgg.pth"), "-o", dir.File("qa.pth"));
        Assert.Equal(ExitCodes.BadInput, qa);
        Assert.Contains("block '0': a QARepVGG block (a bare 1x1 conv, a BN after the sum): its identity branch, and QARepVGGBlockV2's average pool, have no tensors, so a state dict (or a TorchScript archive) cannot say which branches it had; convert the checkpoint YOLOv6 saved (a whole module", qaError);
        var (onnx, _, onnxError) = CliHarness.Rmnet("convert", Fixture.Path_("yolov7_repconv.pth"), "-o", dir.File("d.onnx"));
        Assert.Equal(ExitCodes.BadInput, onnx);
        Assert.Contains("written as a state dict: .pth or .safetensors", onnxError);
        var (bench, _, benchError) = CliHarness.Rmnet("bench", Fixture.Path_("yolov7_repconv.pth"));
        Assert.Equal(ExitCodes.BadInput, bench);
        Assert.Contains("cannot run the detector", benchError);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
