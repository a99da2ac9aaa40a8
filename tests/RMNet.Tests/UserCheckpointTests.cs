using System.IO.Compression;
using RMNet.IO;
using RMNet.Models;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

/// <summary>
/// Training checkpoints as a new user saved them with PyTorch (tools/fixtures/make_fixtures.py --trial22): numpy
/// metadata, Lightning's and torch.compile's prefixes, EMA weights beside the trained ones.
/// </summary>
public class UserCheckpointTests(ITestOutputHelper output)
{
    /// <summary>The root of a torch.save archive's pickle, read by rmnet's inert reader.</summary>
    static PickleDict PickleRoot(string path)
    {
        using var zip = new ZipArchive(File.OpenRead(path), ZipArchiveMode.Read);
        var pkl = zip.Entries.Single(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal));
        var bytes = new byte[pkl.Length];
        using (var s = pkl.Open()) s.ReadExactly(bytes);
        var sizes = zip.Entries.Where(e => e.FullName.Contains("/data/")).ToDictionary(e => e.Name, e => e.Length);
        return Assert.IsType<PickleDict>(PickleReader.Read(bytes, key => sizes.TryGetValue(key, out var n) ? n : null, path));
    }

    static void AssertSameWeights(string expectedPath, StateDict actual)
    {
        using var expected = CheckpointReader.Read(expectedPath);
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var (key, t) in expected) Assert.True(t.eq(actual[key]).all().item<bool>(), key);
    }

    [Fact]
    public void NumpyScalarsAndArraysInTheMetadataAreReadAsValues()
    {
        string path = Fixture.Path_("trial22_numpy_meta.pth");
        var root = PickleRoot(path);
        // torch.save wrote each scalar's bytes through _codecs.encode(text, 'latin1'); the numbers come back exactly.
        Assert.Equal(3L, root.Get("epoch"));
        Assert.Equal(0.5, root.Get("best_acc1"));
        Assert.Equal((double)0.1f, root.Get("lr"));
        Assert.Equal(1.5, root.Get("loss"));
        Assert.Equal(-7L, root.Get("seen"));
        Assert.Equal(true, root.Get("done"));
        var history = Assert.IsType<PickleObject>(root.Get("history"));
        Assert.Equal("numpy.ndarray", history.Type.ToString());
        // Its BUILD state: (version, shape, dtype, fortran order, the raw bytes, latin-1 decoded): 0.25f and 0.5f.
        var state = Assert.IsType<object?[]>(history.State);
        Assert.Equal(new object?[] { 2L }, state[1]);
        Assert.Equal(new byte[] { 0, 0, 0x80, 0x3e, 0, 0, 0, 0x3f }, state[4]);

        using var sd = CheckpointReader.Read(path);
        AssertSameWeights(Fixture.Path_("trial22.pth"), sd);
        FamilyChecks.AssertMatchesPyTorch(SourceModels.FromStateDict(sd), "trial22", output, "numpy metadata");
        using var dir = Fixture.Temp();
        var report = ConvertVerified(path, dir.File("plain.onnx"), 32);
        Assert.True(report.GetProperty("verification").GetProperty("max_rel_error").GetDouble() < 1e-5);
    }

    [Theory]
    [InlineData("trial22_lightning.ckpt", "model.", "state_dict")]   // trainer.save_checkpoint: the LightningModule's self.model
    [InlineData("trial22_compiled.pth", "_orig_mod.", null)]          // torch.compile(model).state_dict()
    public void LightningAndTorchCompilePrefixesAreRemoved(string file, string prefix, string? key)
    {
        string path = Fixture.Path_(file);
        using var sd = CheckpointReader.Read(path);
        Assert.Equal(prefix, sd.RemovedPrefix);
        Assert.Equal(key, sd.WeightsKey);
        AssertSameWeights(Fixture.Path_("trial22.pth"), sd);
        FamilyChecks.AssertMatchesPyTorch(SourceModels.FromStateDict(sd), "trial22", output, file);
        using var dir = Fixture.Temp();
        ConvertVerified(path, dir.File("plain.onnx"), 32);
        Assert.Equal(4, Inspect(path).GetProperty("blocks").GetArrayLength());
    }

    [Theory]
    [InlineData(new[] { "module.conv1.weight", "module.fc.bias" }, "module.")]
    [InlineData(new[] { "model._orig_mod.conv1.weight", "model._orig_mod.fc.bias" }, "model._orig_mod.")]
    [InlineData(new[] { "_orig_mod.module.conv1.weight", "_orig_mod.module.fc.bias" }, "_orig_mod.module.")]
    [InlineData(new[] { "model.conv1.weight", "fc.bias" }, "")]                 // not every name: nothing is cut
    [InlineData(new[] { "model.layers.0.weight", "models.fc.bias" }, "")]
    [InlineData(new[] { "conv1.weight", "layer1.0.conv1.weight" }, "")]
    [InlineData(new[] { "model.", "model.x" }, "")]                             // a cut would leave an empty name
    public void OnlyAPrefixSharedByEveryNameIsRemoved(string[] keys, string expected) =>
        Assert.Equal(expected, CheckpointReader.SharedWrapperPrefix(keys));

    [Theory]
    [InlineData("trial22_ema_timm.pth", "state_dict", "state_dict_ema")]   // timm
    [InlineData("trial22_ema_model.pth", "model", "model_ema")]
    public void EmaWeightsAreNamedAndChosenWithWeightsKey(string file, string trained, string ema)
    {
        string path = Fixture.Path_(file);
        var io = Fixture.Io("trial22");
        using (var sd = CheckpointReader.Read(path))
        {
            Assert.Equal(trained, sd.WeightsKey);
            Assert.Equal(new[] { ema }, sd.OtherWeightsKeys);
            AssertSameWeights(Fixture.Path_("trial22.pth"), sd);
        }
        using (var sd = CheckpointReader.Read(path, ema))
        {
            Assert.Equal(ema, sd.WeightsKey);
            Assert.Equal(new[] { trained }, sd.OtherWeightsKeys);
            using var model = SourceModels.FromStateDict(sd);
            using var module = model.CreateModule();
            // PyTorch's output of the EMA weights, 7.8e-2 away from the trained ones' at most.
            var report = Equivalence.Measure(io["output_ema"], module.forward(io["input"]), 1e-5);
            Assert.True(report.Passed, $"{report.MaxRelError}");
        }

        using var dir = Fixture.Temp();
        string plain = dir.File("ema.onnx");
        var (code, _, stderr) = Rmnet("convert", path, "-o", plain, "--weights-key", ema, "--verify", "--input-size", "32");
        Assert.True(code == 0, stderr);
        Assert.Contains($"rmnet: {path}: weights read from '{ema}' (also in the file: '{trained}'; --weights-key picks another)", stderr);
        Assert.Equal(0, Rmnet("verify", path, plain, "--weights-key", ema, "--input-size", "32", "--quiet").Code);
        // Without the key the trained weights are read, said so on stderr, and they are not the EMA ones.
        (code, _, stderr) = Rmnet("verify", path, plain, "--input-size", "32");
        Assert.Equal(1, code);
        Assert.Contains($"rmnet: {path}: weights read from '{trained}' (also in the file: '{ema}'; --weights-key picks another)", stderr);
        var inspect = Inspect(path);
        Assert.Equal(trained, inspect.GetProperty("weights_key").GetString());
        Assert.Equal(new[] { ema }, inspect.GetProperty("other_weights_keys").EnumerateArray().Select(e => e.GetString()));
        (code, var stdout, stderr) = Rmnet("inspect", path, "--weights-key", ema, "--json", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Equal(ema, System.Text.Json.JsonDocument.Parse(stdout).RootElement.GetProperty("weights_key").GetString());
        (code, _, _) = Rmnet("bench", path, "--weights-key", ema, "--runtime", "torchsharp", "--size", "32", "--batch", "1", "--runs", "1", "--warmup", "0", "--quiet");
        Assert.Equal(0, code);
    }

    [Fact]
    public void AWeightsKeyTheFileLacksIsRefusedWithItsKeys()
    {
        using var dir = Fixture.Temp();
        string ema = Fixture.Path_("trial22_ema_model.pth"), plainDict = Fixture.Path_("trial22.pth"), safetensors = Fixture.Path_("basic_narrow.safetensors");
        foreach (var (file, command, problem) in new[]
        {
            (ema, "convert", "--weights-key: the checkpoint has no key 'state_dict_ema'; its keys are [model, model_ema, epoch]"),
            (ema, "inspect", "--weights-key: the checkpoint has no key 'state_dict_ema'; its keys are [model, model_ema, epoch]"),
            (plainDict, "convert", "--weights-key: the file holds a state dict at its top level, not a checkpoint with keys to choose from"),
            (safetensors, "convert", "--weights-key: a safetensors file holds one set of weights, with no keys to choose from"),
        })
        {
            string output = dir.File("out.onnx");
            var args = command == "convert" ? new[] { command, file, "-o", output, "--weights-key", "state_dict_ema", "--quiet" } : new[] { command, file, "--weights-key", "state_dict_ema", "--quiet" };
            var (code, stdout, stderr) = Rmnet(args);
            Assert.Equal(2, code);
            Assert.Equal("", stdout);
            Assert.Equal($"rmnet: error: {file}: {problem}", stderr.Trim());
            Assert.False(File.Exists(output));
        }
        string onnx = Fixture.Path_(Path.Combine("onnx", "basic_narrow_opset13.onnx"));
        var (onnxCode, _, onnxError) = Rmnet("bench", onnx, "--weights-key", "model_ema", "--quiet");
        Assert.Equal(2, onnxCode);
        Assert.Equal($"rmnet: error: {onnx}: --weights-key applies to checkpoints; an ONNX model has one set of weights", onnxError.Trim());
        var (epochCode, _, epochError) = Rmnet("inspect", ema, "--weights-key", "epoch", "--quiet");
        Assert.Equal(2, epochCode);
        Assert.Equal($"rmnet: error: {ema}: --weights-key: 'epoch' holds a number, not a state dict or a module", epochError.Trim());
    }

    [Fact]
    public void InspectNamesTheFamilyOnceAndReportsTheWeightsDtypeAndAPlainFilesArchitecture()
    {
        foreach (var (file, first) in new[]
        {
            ("trial22.pth", "basic-resnet[1,1,1,1] stem 2, widths [2,4,8,16] (Basic blocks 1-1-1-1, 3 classes), residual, float32 weights"),
            ("basic_narrow_fp16.pth", "basic-resnet[2,1,1,1] stem 8, widths [8,16,32,64] (Basic blocks 2-1-1-1, 10 classes), residual, float16 weights"),
            ("mobilenet_v2_narrow.pth", "mobilenet_v2 (stem 8, last 1280) (17 inverted residual blocks, 11 with a residual, 10 classes), residual (inverted), float32 weights"),
        })
        {
            string path = Fixture.Path_(file);
            var (code, stdout, stderr) = Rmnet("inspect", path, "--quiet");
            Assert.True(code == 0, stderr);
            Assert.Equal($"{path}: {first}", stdout.Split('\n')[0]);
        }
        Assert.Equal("float16", Inspect(Fixture.Path_("basic_narrow_fp16.pth")).GetProperty("weights_dtype").GetString());
        Assert.Equal("float16", Inspect(Fixture.Path_("basic_narrow_fp16.safetensors")).GetProperty("weights_dtype").GetString());
        Assert.Equal("float64", Inspect(Fixture.Path_("basic_narrow_fp64.pth")).GetProperty("weights_dtype").GetString());
        Assert.Equal("float32", Inspect(Fixture.Path_(Path.Combine("onnx", "basic_narrow_opset13.onnx"))).GetProperty("weights_dtype").GetString());
        using var dir = Fixture.Temp();
        string plain = dir.File("plain16.pth");
        Assert.Equal(0, Rmnet("convert", Fixture.Path_("trial22.pth"), "-o", plain, "--dtype", "float16", "--quiet").Code);
        var json = Inspect(plain);
        Assert.Equal("float16", json.GetProperty("weights_dtype").GetString());
        int layers = json.GetProperty("layers").GetInt32();
        Assert.Equal($"plain ({layers} layers)", json.GetProperty("architecture").GetString());
        Assert.True(layers > 4);
    }
}
