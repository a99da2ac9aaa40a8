using System.Text.Json;
using Xunit;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

/// <summary>Usage errors read like every other error, and bench/verify take a model's fixed input dimensions.</summary>
public class CliUsageTests
{
    static string OneLine(string stderr) => Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));

    [Theory]
    [InlineData(new[] { "convert", "m.pth", "-o", "x.onnx", "--bogus" }, "rmnet: error: m.pth: Unrecognized command or argument '--bogus' (see 'rmnet convert --help')")]
    [InlineData(new[] { "convert", "m.pth", "-o", "x.onnx", "--rm-mode", "Sparse" }, "rmnet: error: m.pth: --rm-mode: 'Sparse' is not one of grouped, dense (see 'rmnet convert --help')")]
    [InlineData(new[] { "convert", "m.pth", "-o", "x.onnx", "--negative-input", "abs" }, "rmnet: error: m.pth: --negative-input: 'abs' is not one of prelu, split (see 'rmnet convert --help')")]
    [InlineData(new[] { "verify", "a.pth", "b.onnx", "--samples", "many" }, "rmnet: error: a.pth: Cannot parse argument 'many' for option '--samples' as a whole number (see 'rmnet verify --help')")]
    [InlineData(new[] { "bench", "m.onnx", "--runtime", "tensorrt" }, "rmnet: error: m.onnx: --runtime: 'tensorrt' is not one of 'torchsharp', 'onnxruntime' (see 'rmnet bench --help')")]
    [InlineData(new[] { "convert" }, "rmnet: error: rmnet convert: Option '--output' is required; Required argument 'model' missing for command: 'convert' (see 'rmnet convert --help')")]
    public void UsageErrorsAreOneLineAndJsonToo(string[] args, string expected)
    {
        var (code, stdout, stderr) = Rmnet(args);
        Assert.Equal(2, code);
        Assert.Equal(expected, OneLine(stderr));
        Assert.Equal("", stdout);
        var (jsonCode, json, jsonErr) = Rmnet(args.Append("--json").ToArray());
        Assert.Equal(2, jsonCode);
        Assert.Equal(expected, OneLine(jsonErr));
        var doc = JsonDocument.Parse(json).RootElement;
        Assert.Equal(expected["rmnet: error: ".Length..], doc.GetProperty("error").GetString());
        Assert.Equal(2, doc.GetProperty("exit_code").GetInt32());
    }

    [Fact]
    public void ChoicesAreAcceptedInAnyCaseAndListedInLowerCase()
    {
        using var dir = Fixture.Temp();
        var (code, stdout, _) = Rmnet("convert", Fixture.Path_("bottleneck_narrow.pth"), "-o", dir.File("d.onnx"), "--rm-mode", "DENSE", "--json", "--quiet");
        Assert.Equal(0, code);
        Assert.Equal("dense", JsonDocument.Parse(stdout).RootElement.GetProperty("rm_mode").GetString());
        var (_, help, _) = Rmnet("convert", "--help");
        Assert.Contains("--rm-mode <grouped|dense>", help);
        Assert.Contains("[default: grouped]", help);
        Assert.DoesNotContain("Grouped", help);
        var (_, verifyHelp, _) = Rmnet("verify", "--help");
        Assert.Contains("[N, C, H, W], C the model's input channels", verifyHelp);
    }

    [Fact]
    public void BenchUsesTheOnnxModelsFixedBatchAndSizeAndSaysSo()
    {
        var (code, stdout, stderr) = Rmnet("bench", Fixture.Path_("onnx/quirk_constants_fixed_batch_same_upper.onnx"), "--runs", "1", "--warmup", "0", "--json");
        Assert.True(code == 0, stderr);
        var doc = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(1, doc.GetProperty("batch").GetInt32());
        Assert.Equal(64, doc.GetProperty("size").GetInt32());
        Assert.Equal(new long[] { 1, 3, 64, 64 }, doc.GetProperty("input_shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(new[] { "batch 1 fixed by the model (not --batch 8)", "64x64 fixed by the model (not --size 224)" },
            doc.GetProperty("fixed_by_model").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains("rmnet: input [1, 3, 64, 64]: batch 1 fixed by the model (not --batch 8); 64x64 fixed by the model (not --size 224)", stderr);
    }

    [Fact]
    public void VerifyUsesTheOnnxModelsFixedBatchAndSizeAndSaysSo()
    {
        string model = Fixture.Path_("onnx/quirk_constants_fixed_batch_same_upper.onnx");
        using var dir = Fixture.Temp();
        string plain = dir.File("plain.onnx");
        Assert.Equal(0, Rmnet("convert", model, "-o", plain, "--quiet").Code);
        var (code, stdout, stderr) = Rmnet("verify", model, plain, "--samples", "3", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Contains("inputs: 3 seeded images [3, 64, 64] (batch 1 fixed by the model, so 3 runs for --samples 3; 64x64 fixed by the model, not --input-size 224)", stdout);
        var json = JsonDocument.Parse(Rmnet("verify", model, plain, "--samples", "3", "--quiet", "--json").Out).RootElement.GetProperty("verification");
        Assert.Equal(3, json.GetProperty("samples").GetInt32());
        Assert.Equal(new long[] { 1, 3, 64, 64 }, json.GetProperty("input_shape").EnumerateArray().Select(e => e.GetInt64()));
    }

    [Fact]
    public void VerifyCountsTheUsersImagesToo()
    {
        using var dir = Fixture.Temp();
        string plain = dir.File("plain.onnx");
        Assert.Equal(0, Rmnet("convert", Fixture.Path_("basic_narrow.pth"), "-o", plain, "--quiet").Code);
        string input = Fixture.Path_("basic_narrow.io.pth");   // "input" holds 2 images of 64x64
        var (code, stdout, stderr) = Rmnet("verify", Fixture.Path_("basic_narrow.pth"), plain, "--input", input, "--input-size", "64");
        Assert.True(code == 0, stderr);
        Assert.Contains($"rmnet: verifying {plain} on 4 seeded images of 64x64 and the 2 of {input}", stderr);
        Assert.Contains($"inputs: 4 seeded images [3, 64, 64] plus 2 from {input}", stdout);
        Assert.Contains("verification: 6 images", stdout);
    }
}
