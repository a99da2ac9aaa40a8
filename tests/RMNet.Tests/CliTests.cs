using System.Text.Json;
using RMNet.Cli;
using RMNet.IO;
using RMNet.Plain;
using Xunit;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

public class CliTests
{
    static string Basic => Fixture.Path_("basic_narrow.pth");

    [Fact]
    public void ConvertWithVerifyWritesOnnxAndReportsJson()
    {
        using var dir = Fixture.Temp();
        string output = dir.File("plain.onnx");
        var (code, stdout, stderr) = Rmnet("convert", Basic, "-o", output, "--verify", "--input-size", "64", "--json");
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(output));
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal(5, root.GetProperty("blocks").GetInt32());  // 2+1+1+1 blocks
        Assert.Equal(80146, root.GetProperty("original").GetProperty("parameters").GetInt64());
        var v = root.GetProperty("verification");
        Assert.True(v.GetProperty("passed").GetBoolean());
        Assert.True(v.GetProperty("max_rel_error").GetDouble() < 1e-5);
        Assert.Equal(1.0, v.GetProperty("top1_agreement").GetDouble());
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".rmnet-*"));
    }

    [Fact]
    public void ConvertThatFailsVerificationExitsOneAndWritesNothing()
    {
        using var dir = Fixture.Temp();
        string output = dir.File("plain.onnx");
        var (code, _, stderr) = Rmnet("convert", Basic, "-o", output, "--verify", "--tolerance", "1e-15", "--input-size", "64");
        Assert.Equal(ExitCodes.NotEquivalent, code);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
        Assert.Contains("differs from the original", stderr);
    }

    [Fact]
    public void VerifyPassesForRealConversionAndFailsForTamperedOne()
    {
        using var dir = Fixture.Temp();
        string good = dir.File("plain.safetensors");
        Assert.Equal(0, Rmnet("convert", Basic, "-o", good).Code);
        var (ok, okOut, _) = Rmnet("verify", Basic, good, "--input-size", "48", "--samples", "3", "--json");
        Assert.Equal(0, ok);
        Assert.Equal(3, JsonDocument.Parse(okOut).RootElement.GetProperty("verification").GetProperty("samples").GetInt32());

        var model = PlainModelFile.Load(good);
        var conv = model.Convs.Skip(3).First();
        conv.Bias.add_(0.05f);   // a small, plausible-looking corruption
        string bad = dir.File("tampered.safetensors");
        PlainModelFile.Save(model, bad);
        var (code, stdout, _) = Rmnet("verify", Basic, bad, "--input-size", "48");
        Assert.Equal(ExitCodes.NotEquivalent, code);
        Assert.Contains("NOT EQUIVALENT", stdout);
    }

    [Fact]
    public void VerifyAcceptsAUserInputTensor()
    {
        using var dir = Fixture.Temp();
        string onnx = dir.File("plain.onnx");
        Assert.Equal(0, Rmnet("convert", Basic, "-o", onnx).Code);
        var (code, stdout, stderr) = Rmnet("verify", Basic, onnx, "--input", Fixture.Path_("basic_narrow.io.pth"), "--samples", "1", "--input-size", "32", "--json");
        // the io file holds several tensors including 'input' [2, 3, 64, 64]
        Assert.True(code == 0, stderr);
        Assert.Equal(3, JsonDocument.Parse(stdout).RootElement.GetProperty("verification").GetProperty("samples").GetInt32());
    }

    [Fact]
    public void InspectReportsResidualCheckpointAndPlainOnnx()
    {
        var (code, stdout, _) = Rmnet("inspect", Fixture.Path_("resnext_narrow.pth"), "--json");
        Assert.Equal(0, code);
        var root = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal("residual", root.GetProperty("form").GetString());
        Assert.Equal(5, root.GetProperty("blocks").GetArrayLength());
        Assert.Equal(2, root.GetProperty("blocks")[0].GetProperty("groups").GetInt32());
        Assert.Equal("projection", root.GetProperty("blocks")[0].GetProperty("shortcut").GetString());

        using var dir = Fixture.Temp();
        string onnx = dir.File("p.onnx");
        Assert.Equal(0, Rmnet("convert", Fixture.Path_("resnext_narrow.pth"), "-o", onnx).Code);
        var (c2, o2, _) = Rmnet("inspect", onnx, "--json");
        Assert.Equal(0, c2);
        var r2 = JsonDocument.Parse(o2).RootElement;
        Assert.Equal("plain", r2.GetProperty("form").GetString());
        Assert.False(r2.GetProperty("operators").TryGetProperty("Add", out _));
    }

    [Fact]
    public void DemoConvertsVerifiesAndWrites()
    {
        using var dir = Fixture.Temp();
        string output = dir.File("demo.onnx");
        var (code, stdout, stderr) = Rmnet("demo", "-o", output, "--input-size", "64");
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(output));
        Assert.Contains("8 residual blocks -> 17 plain convs", stdout);
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(stdout, ": EQUIVALENT").Count);
    }

    [Fact]
    public void VersionAndHelp()
    {
        var (code, stdout, _) = Rmnet("--version");
        Assert.Equal(0, code);
        Assert.Matches(@"^\d+\.\d+\.\d+", stdout.Trim());
        foreach (var cmd in new[] { "convert", "verify", "inspect", "demo" })
        {
            var (c, o, _) = Rmnet(cmd, "--help");
            Assert.Equal(0, c);
            Assert.Contains("Usage:", o);
        }
    }

    public static IEnumerable<object[]> BadInputs()
    {
        yield return new object[] { "missing", "file not found" };
        yield return new object[] { "directory", "is a directory" };
        yield return new object[] { "empty", "file is empty" };
        yield return new object[] { "text", "not a PyTorch checkpoint" };
        yield return new object[] { "truncated-zip", "cannot read PyTorch checkpoint" };
    }

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadCheckpointGivesExitTwoAndOneLineNamingTheFile(string kind, string expected)
    {
        using var dir = Fixture.Temp();
        string input = dir.File($"{kind}.pth");
        switch (kind)
        {
            case "directory": Directory.CreateDirectory(input); break;
            case "empty": File.WriteAllBytes(input, Array.Empty<byte>()); break;
            case "text": File.WriteAllText(input, "this is not a model\n"); break;
            case "truncated-zip": File.WriteAllBytes(input, File.ReadAllBytes(Basic)[..5000]); break;
        }
        string output = dir.File("out.onnx");
        var (code, _, stderr) = Rmnet("convert", input, "-o", output, "--quiet");
        Assert.Equal(ExitCodes.BadInput, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains(input, lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", stderr);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void OutputRulesProtectFiles()
    {
        using var dir = Fixture.Temp();
        string input = dir.File("model.pth");
        File.Copy(Basic, input);
        var before = File.ReadAllBytes(input);

        Assert.Equal(2, Rmnet("convert", input, "-o", input, "--force").Code);                     // output == input
        Assert.Equal(2, Rmnet("convert", input, "-o", dir.File("no/such/dir/x.onnx")).Code);        // missing directory
        Assert.Equal(2, Rmnet("convert", input, "-o", dir.File("x.unknown")).Code);                 // unknown format
        string existing = dir.File("exists.onnx");
        File.WriteAllText(existing, "keep me");
        var (code, _, stderr) = Rmnet("convert", input, "-o", existing);
        Assert.Equal(2, code);
        Assert.Contains("--force", stderr);
        Assert.Equal("keep me", File.ReadAllText(existing));
        Assert.Equal(0, Rmnet("convert", input, "-o", existing, "--force").Code);
        Assert.NotEqual("keep me", File.ReadAllText(existing));

        Assert.Equal(before, File.ReadAllBytes(input));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".rmnet-*"));
    }

    [Fact]
    public void UsageErrorsExitTwo()
    {
        Assert.Equal(2, Rmnet("convert", Basic).Code);                              // -o missing
        Assert.Equal(2, Rmnet("convert", Basic, "-o", "x.onnx", "--bogus").Code);
        Assert.Equal(2, Rmnet("frobnicate").Code);
        var (code, _, stderr) = Rmnet("convert", Basic, "-o", "x.onnx", "--arch", "resnet9000");
        Assert.Equal(2, code);
        Assert.Contains("unknown --arch 'resnet9000'", stderr);
    }

    [Fact]
    public void VerboseAddsStackTrace()
    {
        var (code, _, stderr) = Rmnet("inspect", "/no/such/file.pth", "--verbose");
        Assert.Equal(2, code);
        Assert.Contains("   at ", stderr);
    }

    [Fact]
    public void JsonErrorDocument()
    {
        var (code, stdout, _) = Rmnet("inspect", "/no/such/file.pth", "--json");
        Assert.Equal(2, code);
        var root = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(2, root.GetProperty("exit_code").GetInt32());
        Assert.Contains("file not found", root.GetProperty("error").GetString());
    }
}

public class CostReportTests
{
    [Fact]
    public void ConvertReportsCostPerStageThatAddsUp()
    {
        using var dir = Fixture.Temp();
        var stdout = new StringWriter();
        int code = CliApp.Run(new[] { "convert", Fixture.Path_("bottleneck_narrow.pth"), "-o", dir.File("p.onnx"), "--json", "--quiet", "--input-size", "64" }, stdout, TextWriter.Null);
        Assert.Equal(0, code);
        var root = JsonDocument.Parse(stdout.ToString()).RootElement;
        var stages = root.GetProperty("stages").EnumerateArray().ToList();
        Assert.Equal(new[] { "stem", "layer1", "layer2", "layer3", "layer4", "head", "total" }, stages.Select(s => s.GetProperty("stage").GetString()));
        var total = stages[^1];
        Assert.Equal(stages.Take(6).Sum(s => s.GetProperty("converted_parameters").GetInt64()), total.GetProperty("converted_parameters").GetInt64());
        Assert.Equal(root.GetProperty("converted").GetProperty("parameters").GetInt64(), total.GetProperty("converted_parameters").GetInt64());
        Assert.Equal(root.GetProperty("original").GetProperty("parameters").GetInt64(), total.GetProperty("original_parameters").GetInt64());
        Assert.Equal(root.GetProperty("converted").GetProperty("macs").GetInt64(), total.GetProperty("converted_macs").GetInt64());
        // The stem and head are unchanged by RM apart from the folded BN (stem loses BN affine params, gains a conv bias).
        Assert.Equal(stages[5].GetProperty("original_macs").GetInt64(), stages[5].GetProperty("converted_macs").GetInt64());
        Assert.Equal(stages[0].GetProperty("original_macs").GetInt64(), stages[0].GetProperty("converted_macs").GetInt64());
        Assert.Equal("grouped", root.GetProperty("rm_mode").GetString());
    }
}

public class BenchCommandTests
{
    [Theory]
    [InlineData("onnxruntime", "basic_narrow.pth")]
    [InlineData("torchsharp", "bottleneck_narrow.pth")]
    [InlineData("onnxruntime", "onnx/resnext_narrow_opset13.onnx")]
    public void BenchReportsBothModelsInOneRun(string runtime, string model)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(new[] { "bench", Fixture.Path_(model), "--runtime", runtime, "--batch", "2", "--size", "48", "--runs", "3", "--warmup", "1", "--json" }, stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        var root = JsonDocument.Parse(stdout.ToString()).RootElement;
        foreach (var side in new[] { "original", "converted" })
        {
            var s = root.GetProperty(side);
            Assert.True(s.GetProperty("min_ms").GetDouble() > 0);
            Assert.True(s.GetProperty("median_ms").GetDouble() >= s.GetProperty("min_ms").GetDouble());
            Assert.True(s.GetProperty("p90_ms").GetDouble() >= s.GetProperty("median_ms").GetDouble());
            Assert.Equal(2 * 1000.0 / s.GetProperty("median_ms").GetDouble(), s.GetProperty("images_per_second").GetDouble(), 6);
        }
        Assert.Equal(root.GetProperty("converted").GetProperty("median_ms").GetDouble() / root.GetProperty("original").GetProperty("median_ms").GetDouble(),
            root.GetProperty("latency_ratio").GetDouble(), 6);
        Assert.Contains("benchmarking: 3/3 done", stderr.ToString());
    }

    [Fact]
    public void OnnxModelWithTorchSharpRuntimeIsRefused()
    {
        var stderr = new StringWriter();
        Assert.Equal(2, CliApp.Run(new[] { "bench", Fixture.Path_("onnx/basic_narrow_opset13.onnx"), "--runtime", "torchsharp" }, TextWriter.Null, stderr));
        Assert.Contains("--runtime onnxruntime", stderr.ToString());
    }
}
