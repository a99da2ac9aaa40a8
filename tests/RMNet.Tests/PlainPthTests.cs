using System.Text.Json;
using RMNet.IO;
using RMNet.Models;
using RMNet.Plain;
using Xunit;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

/// <summary>rmnet's plain .pth carries its architecture: PyTorch builds the module from it, and inspect reads it.</summary>
public class PlainPthTests
{
    public static IEnumerable<object[]> LoadedByPyTorch() =>
        JsonDocument.Parse(File.ReadAllText(Fixture.Path_("plain_pth_pytorch.json"))).RootElement.EnumerateObject().Select(p => new object[] { p.Name });

    /// <summary>
    /// make_fixtures.py --load-plain had Debian's PyTorch load rmnet's plain .pth, .safetensors and float16 .pth
    /// of each fixture with tools/pytorch/load_plain.py and run them: their errors against the original's output
    /// are recorded, with the architecture it loaded, which must be what rmnet writes today.
    /// </summary>
    [Theory]
    [MemberData(nameof(LoadedByPyTorch))]
    public void PyTorchLoadsThePlainPthAndMatchesTheOriginal(string fixture)
    {
        var record = JsonDocument.Parse(File.ReadAllText(Fixture.Path_("plain_pth_pytorch.json"))).RootElement.GetProperty(fixture);
        Assert.True(record.GetProperty("max_rel_error").GetDouble() < 2e-6, record.ToString());
        Assert.True(record.GetProperty("max_abs_error").GetDouble() < 1e-5, record.ToString());
        // The same network from rmnet's .safetensors, and with float16 weights (run in float32 by PyTorch on the CPU).
        Assert.True(record.GetProperty("safetensors_max_rel_error").GetDouble() < 2e-6, record.ToString());
        Assert.InRange(record.GetProperty("float16_max_rel_error").GetDouble(), 1e-5, 1e-3);
        using var model = SourceModels.Load(Fixture.Path_($"{fixture}.pth"));
        var plain = model.ToPlain();
        Assert.Equal(record.GetProperty("architecture").GetString(), PlainArchitecture.ToJson(plain));
        Assert.Equal(plain.Layers.Count, record.GetProperty("layers").GetInt32());
    }

    [Fact]
    public void PlainPthCarriesItsArchitectureAndEveryCommandReadsIt()
    {
        using var dir = Fixture.Temp();
        string pth = dir.File("plain.pth");
        ConvertVerified(Fixture.Path_("bottleneck_narrow.pth"), pth, 64);
        var strings = CheckpointReader.ReadStrings(pth);
        Assert.Equal(new[] { PlainArchitecture.MetadataKey }, strings.Keys);
        Assert.StartsWith("{\"format\":\"rmnet-plain/1\"", strings[PlainArchitecture.MetadataKey]);
        var inspect = Inspect(pth);
        Assert.Equal("pytorch", inspect.GetProperty("format").GetString());
        Assert.Equal("plain", inspect.GetProperty("form").GetString());
        Assert.Equal(36, inspect.GetProperty("layers").GetInt32());
        var (code, _, stderr) = Rmnet("verify", Fixture.Path_("bottleneck_narrow.pth"), pth, "--input-size", "64", "--quiet");
        Assert.True(code == 0, stderr);
        // Loaded with its own architecture, it computes what PyTorch's original does.
        var io = Fixture.Io("bottleneck_narrow");
        var rel = RMNet.Verification.Equivalence.Measure(io["output"], PlainModelFile.Load(pth).Forward(io["input"]), 1e-5);
        Assert.True(rel.Passed, $"{rel.MaxRelError}");
    }

    [Fact]
    public void PlainWeightsWithoutArchitectureAreExplained()
    {
        using var dir = Fixture.Temp();
        string old = dir.File("old.pth");
        using (var model = SourceModels.Load(Fixture.Path_("basic_narrow.pth")))
            StateDictFile.Save(old, PlainArchitecture.Tensors(model.ToPlain()));
        var (code, _, stderr) = Rmnet("inspect", old);
        Assert.Equal(2, code);
        Assert.Equal($"rmnet: error: {old}: a plain network's weights (layers.{{i}}.*) without its architecture, as rmnet wrote .pth files before they carried it: "
            + "rmnet verify still checks it against its original; convert the original again for a file inspect, bench and PyTorch can load", stderr.Trim());
        Assert.Equal(0, Rmnet("verify", Fixture.Path_("basic_narrow.pth"), old, "--input-size", "64", "--quiet").Code);
    }
}
