using System.IO.Compression;
using RMNet.IO;
using RMNet.Models;
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
        _ = key;   // checked with item 9
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
}
