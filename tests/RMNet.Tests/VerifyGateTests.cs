using System.Text.Json;
using Xunit;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

/// <summary>
/// <c>rmnet verify</c> and <c>convert --verify</c> as a CI gate, with the user's own images
/// (tools/fixtures/make_fixtures.py --trial22): never an internal error, never a false pass.
/// </summary>
public class VerifyGateTests
{
    static string Trial22 => Fixture.Path_("trial22.pth");

    /// <summary>trial22.pth converted to plain ONNX in <paramref name="dir"/>.</summary>
    static string Plain(TempDir dir, params string[] extra)
    {
        string plain = dir.File("plain.onnx");
        var (code, _, stderr) = Rmnet(new[] { "convert", Trial22, "-o", plain, "--quiet" }.Concat(extra).ToArray());
        Assert.True(code == 0, stderr);
        return plain;
    }

    /// <summary>An ONNX original (PyTorch's export of basic_narrow) and its plain conversion in <paramref name="dir"/>.</summary>
    static (string Original, string Plain) OnnxPair(TempDir dir)
    {
        string original = Fixture.Path_(Path.Combine("onnx", "basic_narrow_opset13.onnx")), plain = dir.File("plain_graph.onnx");
        var (code, _, stderr) = Rmnet("convert", original, "-o", plain, "--quiet");
        Assert.True(code == 0, stderr);
        return (original, plain);
    }

    static JsonElement Verification(string stdout) => JsonDocument.Parse(stdout).RootElement.GetProperty("verification");

    [Fact]
    public void SamplesZeroVerifiesOnlyTheUsersImages()
    {
        using var dir = Fixture.Temp();
        string plain = Plain(dir);
        string input = Fixture.Path_("trial22.io.pth");   // 'input': 2 images of 32x32
        var (code, stdout, stderr) = Rmnet("verify", Trial22, plain, "--samples", "0", "--input", input, "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var v = Verification(stdout);
        Assert.Equal(2, v.GetProperty("samples").GetInt32());
        Assert.True(v.GetProperty("max_rel_error").GetDouble() < 1e-5);
        Assert.False(v.TryGetProperty("input_shape", out _));   // no seeded batch
        (code, stdout, stderr) = Rmnet("verify", Trial22, plain, "--samples", "0", "--input", input, "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Contains($"inputs: 2 images from {input} (no seeded images: --samples 0)", stdout);

        var (original, plainGraph) = OnnxPair(dir);
        (code, stdout, stderr) = Rmnet("verify", original, plainGraph, "--samples", "0", "--input", input, "--json", "--quiet");
        Assert.True(code == 0, stderr);
        v = Verification(stdout);
        Assert.Equal(2, v.GetProperty("samples").GetInt32());
        Assert.True(v.GetProperty("max_rel_error").GetDouble() < 1e-5);
    }

    [Fact]
    public void SamplesBelowTheirMinimumAreUsageErrors()
    {
        using var dir = Fixture.Temp();
        string plain = Plain(dir);
        var (code, stdout, stderr) = Rmnet("verify", Trial22, plain, "--samples", "0");
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Equal($"rmnet: error: {Trial22}: --samples 0 needs --input (a tensor of your own images to verify on) (see 'rmnet verify --help')", stderr.Trim());
        (code, _, stderr) = Rmnet("verify", Trial22, plain, "--samples", "-1", "--input", Fixture.Path_("trial22.io.pth"));
        Assert.Equal(2, code);
        Assert.Equal($"rmnet: error: {Trial22}: --samples: -1 is below 0 (see 'rmnet verify --help')", stderr.Trim());
        string output = dir.File("out.onnx");
        (code, _, stderr) = Rmnet("convert", Trial22, "-o", output, "--verify", "--samples", "0");
        Assert.Equal(2, code);
        Assert.Equal($"rmnet: error: {Trial22}: --samples: 0 is below 1 (see 'rmnet convert --help')", stderr.Trim());
        Assert.False(File.Exists(output));
    }
}
