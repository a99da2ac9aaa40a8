using RMNet.IO;
using RMNet.Models;
using Xunit;
using Xunit.Abstractions;
using static RMNet.Tests.CliHarness;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// Checkpoints as PyTorch users have them (made by tools/fixtures/make_fixtures.py --as-saved): half, bfloat16 and
/// float64 weights, whole-module pickles, TorchScript archives.
/// </summary>
public class SavedCheckpointTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("basic_narrow_fp16.pth", "basic_narrow_fp16", ScalarType.Float16)]
    [InlineData("basic_narrow_bf16.pth", "basic_narrow_bf16", ScalarType.BFloat16)]
    [InlineData("basic_narrow_fp64.pth", "basic_narrow_fp64", ScalarType.Float64)]
    [InlineData("basic_narrow_fp16.safetensors", "basic_narrow_fp16", ScalarType.Float16)]
    public void EveryFloatDtypeIsReadAndConvertsToPyTorchsOutput(string file, string reference, ScalarType dtype)
    {
        using var sd = CheckpointReader.Read(Fixture.Path_(file));
        Assert.Equal(dtype, sd["layer1.0.conv1.weight"].dtype);
        Assert.Equal(ScalarType.Int64, sd["bn1.num_batches_tracked"].dtype);
        // The reference is PyTorch's float32 run of the same (rounded) weights: the conversion adds only float32 noise.
        var model = SourceModels.FromStateDict(sd);
        FamilyChecks.AssertMatchesPyTorch(model, reference, output, file);
        using var dir = Fixture.Temp();
        var (code, _, stderr) = Rmnet("convert", Fixture.Path_(file), "-o", dir.File("plain.onnx"), "--verify", "--input-size", "64", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Equal(0, Rmnet("inspect", Fixture.Path_(file), "--quiet").Code);
    }

    [Fact]
    public void NonFiniteHalfWeightsAreRefusedInTheirOwnDtype()
    {
        using var dir = Fixture.Temp();
        using var sd = CheckpointReader.Read(Fixture.Path_("basic_narrow_fp16.pth"));
        sd["layer2.0.conv1.weight"][0, 0, 0, 0] = float.PositiveInfinity;
        string path = dir.File("inf16.safetensors");
        AtomicFile.Write(path, s => SafetensorsFile.Write(s, sd.Select(kv => (kv.Key, kv.Value)).ToList(), new Dictionary<string, string>()));
        var (code, _, stderr) = Rmnet("convert", path, "-o", dir.File("out.onnx"), "--quiet");
        Assert.Equal(2, code);
        Assert.Equal($"rmnet: error: {path}: tensor 'layer2.0.conv1.weight' holds NaN or infinite values (pass --allow-nonfinite to go on anyway)", stderr.Trim());
        Assert.False(File.Exists(dir.File("out.onnx")));
        // inspect refuses it the same way, and describes it with --allow-nonfinite (the trial found no way to look at such a file).
        Assert.Equal(2, Rmnet("inspect", path, "--quiet").Code);
        Assert.Equal(0, Rmnet("inspect", path, "--allow-nonfinite", "--quiet").Code);
    }

    [Fact]
    public void InspectOfRmnetsOwnPlainFileNamesANonFiniteWeight()
    {
        // A plain file rmnet wrote, one weight then set to NaN (its metadata kept, so it still reads as rmnet's plain file).
        using var dir = Fixture.Temp();
        string plain = dir.File("plain.safetensors");
        Assert.Equal(0, Rmnet("convert", Fixture.Path_("basic_narrow.pth"), "-o", plain, "--quiet").Code);
        using var sd = CheckpointReader.Read(plain);
        string key = sd.Keys.First(k => k.EndsWith("weight"));
        sd[key].view(-1)[0] = float.NaN;
        string path = dir.File("nan.safetensors");
        var metadata = SafetensorsFile.ReadMetadata(plain);
        AtomicFile.Write(path, s => SafetensorsFile.Write(s, sd.Select(kv => (kv.Key, kv.Value)).ToList(), metadata));
        var (code, _, stderr) = Rmnet("inspect", path, "--quiet");
        Assert.Equal(2, code);
        Assert.Equal($"rmnet: error: {path}: tensor '{key}' holds NaN or infinite values (pass --allow-nonfinite to go on anyway)", stderr.Trim());
        var (allowed, stdout, _) = Rmnet("inspect", path, "--allow-nonfinite", "--quiet");
        Assert.Equal(0, allowed);
        Assert.Contains("plain network written by rmnet", stdout);
    }

    [Theory]
    [InlineData("basic_narrow_whole.pth", "basic_narrow", "resnet", 5)]           // torch.save(model)
    [InlineData("basic_narrow_whole_wrapped.pth", "basic_narrow", "resnet", 5)]   // {"epoch": .., "model": model, ..}
    [InlineData("basic_narrow_script.pt", "basic_narrow", "resnet", 5)]           // torch.jit.script(model).save(..)
    [InlineData("mobilenet_v2_narrow_whole.pth", "mobilenet_v2_narrow", "mobilenet_v2", 17)]
    [InlineData("mobilenet_v2_narrow_script.pt", "mobilenet_v2_narrow", "mobilenet_v2", 17)]
    public void WholeModulesAndTorchScriptGiveTheStateDict(string file, string stateDict, string family, int blocks)
    {
        using var expected = CheckpointReader.Read(Fixture.Path_($"{stateDict}.pth"));
        using var sd = CheckpointReader.Read(Fixture.Path_(file));
        Assert.Equal(expected.Keys, sd.Keys);
        foreach (var (key, t) in expected)
        {
            Assert.Equal(t.shape, sd[key].shape);
            Assert.True(t.eq(sd[key]).all().item<bool>(), key);
        }
        FamilyChecks.AssertMatchesPyTorch(SourceModels.FromStateDict(sd), stateDict, output, file);
        var inspect = Inspect(Fixture.Path_(file));
        Assert.Equal(family, inspect.GetProperty("family").GetString());
        Assert.Equal(blocks, inspect.GetProperty("blocks").GetArrayLength());
    }

    [Fact]
    public void OldTorchScriptArchivesAreRefusedWithWhatToRunInPyTorch()
    {
        using var dir = Fixture.Temp();
        string path = dir.File("old_script.pt");
        using (var zip = new System.IO.Compression.ZipArchive(File.Create(path), System.IO.Compression.ZipArchiveMode.Create))
        {
            using (var s = zip.CreateEntry("old_script/model.json").Open()) s.Write("{\"protoVersion\": \"6\"}"u8);
            using (var s = zip.CreateEntry("old_script/tensors/0").Open()) s.Write(new byte[16]);
        }
        var (code, _, stderr) = Rmnet("inspect", path);
        Assert.Equal(2, code);
        Assert.Equal($"rmnet: error: {path}: a TorchScript archive of PyTorch 1.3 or older (model.json), which rmnet does not read; in PyTorch, "
            + "save its weights with torch.save(torch.jit.load(path).state_dict(), 'weights.pth')", stderr.Trim());
    }

    [Fact]
    public void WholeModuleRecordsHoldTheirClassesWithoutRunningThem()
    {
        var bytes = System.IO.Compression.ZipFile.OpenRead(Fixture.Path_("basic_narrow_whole.pth")).Entries.Single(e => e.Name == "data.pkl");
        using var s = bytes.Open();
        var data = new byte[bytes.Length];
        s.ReadExactly(data);
        var root = Assert.IsType<PickleObject>(PickleReader.Read(data, _ => long.MaxValue, "whole.pth"));
        Assert.Equal("torchvision.models.resnet.ResNet", root.Type.ToString());
        var modules = Assert.IsType<PickleDict>(root.StateDict!.Get("_modules"));
        var block = Assert.IsType<PickleObject>(Assert.IsType<PickleObject>(modules.Get("layer1")).StateDict!.Get("_modules") is PickleDict d ? d.Get("0") : null);
        Assert.Equal("torchvision.models.resnet.BasicBlock", block.Type.ToString());
        // The norm layer class is kept as a name, never resolved.
        Assert.Equal(new PickleGlobal("torch.nn.modules.batchnorm", "BatchNorm2d"), root.StateDict.Get("_norm_layer"));
    }
}
