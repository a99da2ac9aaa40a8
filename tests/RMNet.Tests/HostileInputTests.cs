using System.Text;
using RMNet.Cli;
using RMNet.IO;
using RMNet.Models;
using Xunit;
using static RMNet.Tests.CliHarness;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// Bad and hostile inputs: each ends in exit 2 with one error line naming the file, and writes nothing. Run with no other
/// test beside them, since an allocation bound here reads the process's count.
/// </summary>
[Collection("Training")]
public class HostileInputTests
{
    static void AssertRefused(string input, string expected, params string[] extra)
    {
        using var dir = Fixture.Temp();
        string output = dir.File("out.onnx");
        var (code, _, stderr) = Rmnet(new[] { "convert", input, "-o", output, "--quiet" }.Concat(extra).ToArray());
        Assert.Equal(ExitCodes.BadInput, code);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"rmnet: error: {input}: ", line);
        Assert.Contains(expected, line);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData("evil_os_system.pth", "posix.system")]   // os.system pickles under its module's real name
    [InlineData("evil_builtins_eval.pth", "__builtin__.eval")]      // protocol 2 writes Python 2 module names
    [InlineData("evil_subprocess_popen.pth", "commands.Popen")]
    [InlineData("evil_whole_module.pth", "posix.system")]  // a whole torch.save(model) whose module carries the call
    public void PickleAskingForArbitraryGlobalsIsRefusedByName(string file, string global)
    {
        File.Delete("/tmp/rmnet-pwned");
        AssertRefused(Fixture.Path_(file), $"global '{global}', refused");
        Assert.False(File.Exists("/tmp/rmnet-pwned"));
    }

    [Fact]
    public void PickleDeclaringHugeTensorIsRefusedBeforeAllocating()
    {
        long before = GC.GetTotalAllocatedBytes();
        AssertRefused(Fixture.Path_("huge_tensor.pth"), "declares 1000000000000 elements");
        Assert.True(GC.GetTotalAllocatedBytes() - before < 100_000_000);
    }

    static string WriteSafetensors(TempDir dir, string name, byte[] header, int dataBytes)
    {
        string path = dir.File(name);
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((ulong)header.Length));
        f.Write(header);
        f.Write(new byte[dataBytes]);
        return path;
    }

    [Theory]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,4000000000]}}", 16, "outside the 16-byte data section")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1000000,1000000],\"data_offsets\":[0,16]}}", 16, "need 4000000000000")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "overlap")]
    [InlineData("{\"a\":{\"dtype\":\"Q99\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "unsupported dtype")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 16, "negative dimension")]
    [InlineData("{\"a\": [1, 2", 16, "malformed safetensors header")]
    public void SafetensorsHeaderThatLiesIsRefused(string header, int dataBytes, string expected)
    {
        using var dir = Fixture.Temp();
        AssertRefused(WriteSafetensors(dir, "lie.safetensors", Encoding.UTF8.GetBytes(header), dataBytes), expected);
    }

    [Fact]
    public void SafetensorsHeaderLengthBeyondFileIsRefused()
    {
        using var dir = Fixture.Temp();
        string path = dir.File("long.safetensors");
        File.WriteAllBytes(path, BitConverter.GetBytes(1_000_000UL).Concat(Encoding.UTF8.GetBytes("{\"a\":1}")).ToArray());
        AssertRefused(path, "header claims 1000000 bytes");
    }

    static string Modified(TempDir dir, string name, Action<StateDict> change)
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"));
        change(ckpt.Weights);
        string path = dir.File(name);
        AtomicFile.Write(path, s => SafetensorsFile.Write(s, ckpt.Weights.Select(kv => (kv.Key, kv.Value)).ToList(), new Dictionary<string, string>()));
        return path;
    }

    [Fact]
    public void NonFiniteWeightsAreRefusedUnlessAllowed()
    {
        using var dir = Fixture.Temp();
        string path = Modified(dir, "nan.safetensors", sd => sd["layer1.1.conv2.weight"][0, 0, 0, 0] = float.NaN);
        AssertRefused(path, "tensor 'layer1.1.conv2.weight' holds NaN or infinite values");
        string output = dir.File("ok.onnx");
        Assert.Equal(0, Rmnet("convert", path, "-o", output, "--allow-nonfinite", "--quiet").Code);
        Assert.True(File.Exists(output));
    }

    [Fact]
    public void NegativeBatchNormVarianceIsRefused()
    {
        using var dir = Fixture.Temp();
        string path = Modified(dir, "negvar.safetensors", sd => sd["layer2.0.bn2.running_var"][3] = -1f);
        AssertRefused(path, "BatchNorm variance 'layer2.0.bn2.running_var'");
    }

    [Fact]
    public void UnknownArchitectureIsRefused() =>
        AssertRefused(Fixture.Path_("evil_os_system.pth").Replace("evil_os_system", "basic_narrow"), "unknown --arch 'vgg16'", "--arch", "vgg16");

    [Fact]
    public void LegacyPickleFormatIsRefusedWithAdvice()
    {
        using var dir = Fixture.Temp();
        string path = dir.File("legacy.pth");
        File.WriteAllBytes(path, new byte[] { 0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e });
        AssertRefused(path, "legacy (pre-1.6) format");
    }

    [Fact]
    public void UnwritableDirectoryIsRefusedAndInputUntouched()
    {
        var before = File.ReadAllBytes(Fixture.Path_("basic_narrow.pth"));
        var (code, _, stderr) = Rmnet("convert", Fixture.Path_("basic_narrow.pth"), "-o", "/proc/rmnet-out.onnx", "--quiet");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("/proc/rmnet-out.onnx", stderr);
        Assert.Equal(before, File.ReadAllBytes(Fixture.Path_("basic_narrow.pth")));
    }

    [Fact]
    public void ProgressIsLoggedWhenRedirectedAndSilencedByQuiet()
    {
        using var dir = Fixture.Temp();
        var (_, _, loud) = Rmnet("convert", Fixture.Path_("basic_narrow.pth"), "-o", dir.File("a.onnx"));
        Assert.Contains("rmnet: converting: 5/5 done", loud);
        Assert.Contains("rmnet: loading ", loud);
        var (_, _, quiet) = Rmnet("convert", Fixture.Path_("basic_narrow.pth"), "-o", dir.File("b.onnx"), "--quiet");
        Assert.Equal("", quiet);
    }

    [Fact]
    public void AllOutputFormatsAreByteIdenticalRunAfterRun()
    {
        using var dir = Fixture.Temp();
        foreach (var ext in new[] { "onnx", "safetensors", "pth" })
        {
            Assert.Equal(0, Rmnet("convert", Fixture.Path_("bottleneck_narrow.pth"), "-o", dir.File($"a.{ext}"), "--quiet").Code);
            Assert.Equal(0, Rmnet("convert", Fixture.Path_("bottleneck_narrow.pth"), "-o", dir.File($"b.{ext}"), "--quiet").Code);
            Assert.Equal(File.ReadAllBytes(dir.File($"a.{ext}")), File.ReadAllBytes(dir.File($"b.{ext}")));
        }
    }

    [Fact]
    public void PthOutputsCarryNoClockTime()
    {
        // The zip entries used to carry the time of writing, so conversions 2 s apart differed (and the test above
        // failed when its two runs straddled a 2-second tick).
        using var dir = Fixture.Temp();
        Assert.Equal(0, Rmnet("convert", Fixture.Path_("basic_narrow.pth"), "-o", dir.File("a.pth"), "--quiet").Code);
        using var zip = System.IO.Compression.ZipFile.OpenRead(dir.File("a.pth"));
        Assert.True(zip.Entries.Count > 3);
        Assert.All(zip.Entries, e => Assert.Equal(new DateTime(1980, 1, 1), e.LastWriteTime.DateTime));
        using var sd = RMNet.IO.CheckpointReader.Read(dir.File("a.pth"));
        Assert.True(sd.Count > 3);
    }
}
