using System.Text.Json;
using RMNet.Cli;
using RMNet.IO;
using RMNet.Verification;
using Xunit;
using TorchSharp;
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

    /// <summary>
    /// A checkpoint against a plain ONNX that fixes its batch and size (what rmnet makes of a static export): the trial found
    /// an internal error (ONNX Runtime refusing the batch); the seeded images now come in the model's own batches and size.
    /// </summary>
    [Fact]
    public void ACheckpointIsVerifiedAgainstAnOnnxWithAFixedInputShape()
    {
        using var dir = Fixture.Temp();
        string plain = Plain(dir);
        var model = Onnx.OnnxModelFile.Load(plain);
        var dims = model.Graph.Input[0].Type.TensorType.Shape.Dim;
        foreach (var (i, v) in new[] { (0, 2L), (2, 40L), (3, 40L) }) dims[i] = new global::Onnx.TensorShapeProto.Types.Dimension { DimValue = v };
        model.Graph.Output[0].Type.TensorType.Shape.Dim[0] = new global::Onnx.TensorShapeProto.Types.Dimension { DimValue = 2 };
        string fixedShape = dir.File("fixed.onnx");
        Onnx.OnnxModelFile.Save(model, fixedShape);
        var (code, stdout, stderr) = Rmnet("verify", Trial22, fixedShape, "--samples", "3");
        Assert.True(code == 0, stderr);
        Assert.Contains("inputs: 4 seeded images [3, 40, 40] (batch 2 fixed by the model, so 2 runs for --samples 3; 40x40 fixed by the model, not --input-size 224)", stdout);
        var (_, json, _) = Rmnet("verify", Trial22, fixedShape, "--samples", "3", "--json", "--quiet");
        Assert.Equal(40, JsonDocument.Parse(json).RootElement.GetProperty("input_size").GetInt32());   // what ran, not the option
        Assert.Contains("EQUIVALENT", stdout);
    }

    /// <summary>Another network's file fails verification saying its outputs have another shape (was "max abs error Infinity", and "Infinity" as a JSON string).</summary>
    [Fact]
    public void AnotherNetworksOutputShapeIsNamed()
    {
        using var dir = Fixture.Temp();
        string plain = Plain(dir);   // trial22: 3 classes
        var (code, stdout, _) = Rmnet("verify", Fixture.Path_("basic_narrow.pth"), plain, "--input-size", "32");
        Assert.Equal(1, code);
        Assert.Contains("outputs of different shapes (original [4, 10], converted [4, 3]): not the same network", stdout);
        var (_, json, _) = Rmnet("verify", Fixture.Path_("basic_narrow.pth"), plain, "--input-size", "32", "--json", "--quiet");
        var verification = Verification(json);
        Assert.Equal("original [4, 10], converted [4, 3]", verification.GetProperty("output_mismatch").GetString());
        Assert.False(verification.TryGetProperty("max_abs_error", out _));
        Assert.False(verification.GetProperty("passed").GetBoolean());
    }

    /// <summary>An --input of another size than a fixed-size model takes is refused naming the file (was an internal error from libtorch).</summary>
    [Fact]
    public void AnInputOfTheWrongSizeForAFixedSizeModelIsRefused()
    {
        using var dir = Fixture.Temp();
        string plain = dir.File("face.onnx");
        Assert.Equal(0, Rmnet("convert", Fixture.Path_("iresnet18_narrow.pth"), "-o", plain, "--quiet").Code);
        string input = dir.File("x224.pt");
        StateDictFile.Save(input, new[] { ("input", torch.randn(1, 3, 224, 224)) });
        var (code, _, stderr) = Rmnet("verify", Fixture.Path_("iresnet18_narrow.pth"), plain, "--input", input, "--samples", "1");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains($"rmnet: error: {input}: the input batch has shape [1, 3, 224, 224]; the models take 112x112 images", stderr);
    }

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

    /// <summary><c>rmnet command args</c> ends in exit 2 with one line naming trial22.pth, <paramref name="problem"/> and the command's help, and nothing on stdout.</summary>
    static void AssertUsageError(string problem, string command, params string[] args)
    {
        var (code, stdout, stderr) = Rmnet(new[] { command }.Concat(args).ToArray());
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Equal($"rmnet: error: {Trial22}: {problem} (see 'rmnet {command} --help')", stderr.Trim());
    }

    [Fact]
    public void SamplesBelowTheirMinimumAreUsageErrors()
    {
        using var dir = Fixture.Temp();
        string plain = Plain(dir), output = dir.File("out.onnx");
        AssertUsageError("--samples 0 needs --input (a tensor of your own images to verify on)", "verify", Trial22, plain, "--samples", "0");
        AssertUsageError("--samples: -1 is below 0", "verify", Trial22, plain, "--samples", "-1", "--input", Fixture.Path_("trial22.io.pth"));
        AssertUsageError("--samples: 0 is below 1", "convert", Trial22, "-o", output, "--verify", "--samples", "0");
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void NaNFromTheUsersImageFailsTheCheckpointVerificationAndSaysWhy()
    {
        using var dir = Fixture.Temp();
        string plain = Plain(dir);
        string nan = Fixture.Path_("trial22_input_nan.pt");   // {'input': one all-NaN 3x32x32 image}
        var (code, stdout, stderr) = Rmnet("verify", Trial22, plain, "--input", nan, "--input-size", "32", "--quiet");
        Assert.True(code == 1, stderr);
        // 4 seeded images and the NaN one; 3 classes: 3 NaN outputs in each model.
        Assert.Contains("verification: 5 images, ", stdout);
        Assert.Contains("non-finite outputs in 1 of 5 images (original: 3 NaN; converted: 3 NaN): NOT EQUIVALENT", stdout);
        Assert.Contains($"  of which {nan}: 1 images, ", stdout);
        Assert.Contains("non-finite outputs in 1 of 1 images (original: 3 NaN; converted: 3 NaN)", stdout.Split('\n').Single(l => l.StartsWith("  of which")));

        (code, stdout, _) = Rmnet("verify", Trial22, plain, "--input", nan, "--input-size", "32", "--json", "--quiet");
        Assert.Equal(1, code);
        var v = Verification(stdout);
        Assert.False(v.GetProperty("passed").GetBoolean());
        Assert.Equal("non-finite outputs in 1 of 5 images (original: 3 NaN; converted: 3 NaN)", v.GetProperty("non_finite").GetString());
        // The seeded images' errors are still measured, over the finite outputs.
        Assert.True(v.GetProperty("max_rel_error").GetDouble() < 1e-5);
        Assert.Equal(1, v.GetProperty("user_input").GetProperty("samples").GetInt32());
        Assert.False(v.GetProperty("user_input").GetProperty("passed").GetBoolean());
    }

    [Fact]
    public void TheUsersImagesAreReportedBesideTheSeededOnes()
    {
        using var dir = Fixture.Temp();
        string plain = Plain(dir);
        var (code, stdout, stderr) = Rmnet("verify", Trial22, plain, "--input", Fixture.Path_("trial22.io.pth"), "--input-size", "32", "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var v = Verification(stdout);
        Assert.Equal(6, v.GetProperty("samples").GetInt32());
        var user = v.GetProperty("user_input");
        Assert.Equal(2, user.GetProperty("samples").GetInt32());
        Assert.True(user.GetProperty("passed").GetBoolean());
        double userError = user.GetProperty("max_rel_error").GetDouble();
        Assert.True(userError > 0 && userError < 1e-5 && userError <= v.GetProperty("max_rel_error").GetDouble());
        Assert.False(v.TryGetProperty("non_finite", out _));
    }

    [Fact]
    public void NaNFromTheUsersImageFailsTheOnnxVerification()
    {
        using var dir = Fixture.Temp();
        var (original, plain) = OnnxPair(dir);
        var (code, stdout, stderr) = Rmnet("verify", original, plain, "--input", Fixture.Path_("trial22_input_nan.pt"), "--input-size", "32", "--quiet");
        Assert.True(code == 1, stderr);
        // basic_narrow has 10 classes.
        Assert.Contains("non-finite outputs in 1 of 5 images (original: 10 NaN; converted: 10 NaN): NOT EQUIVALENT", stdout);
    }

    [Fact]
    public void ConvertVerifyRefusesNaNOutputsAndSaysWhy()
    {
        using var dir = Fixture.Temp();
        string path = dir.File("nan_bias.safetensors");
        using (var sd = CheckpointReader.Read(Trial22))
        {
            sd["fc.bias"][1] = float.NaN;
            AtomicFile.Write(path, s => SafetensorsFile.Write(s, sd.Select(kv => (kv.Key, kv.Value)).ToList(), new Dictionary<string, string>()));
        }
        foreach (string output in new[] { dir.File("out.onnx"), dir.File("out.pth") })
        {
            var (code, _, stderr) = Rmnet("convert", path, "-o", output, "--allow-nonfinite", "--verify", "--input-size", "32", "--quiet");
            Assert.Equal(1, code);
            Assert.Equal($"rmnet: error: {output}: converted model differs from the original (non-finite outputs in 4 of 4 images (original: 4 NaN; converted: 4 NaN)); nothing written",
                stderr.Trim());
            Assert.False(File.Exists(output));
        }
        // The JSON document says the same: the error and the exit code, as the ONNX path's does.
        var (jsonCode, stdout, _) = Rmnet("convert", path, "-o", dir.File("out.onnx"), "--allow-nonfinite", "--verify", "--input-size", "32", "--json", "--quiet");
        Assert.Equal(1, jsonCode);
        var root = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(1, root.GetProperty("exit_code").GetInt32());
        Assert.StartsWith($"{dir.File("out.onnx")}: converted model differs from the original (non-finite outputs", root.GetProperty("error").GetString());
    }

    [Fact]
    public void OnlyTheSameInfinityInBothModelsAgrees()
    {
        using var reference = torch.tensor(new[] { 1.0, double.PositiveInfinity, -2.0, 0.5, 1.0, 3.0 }).reshape(2, 3);
        using var same = torch.tensor(new[] { 1.0, double.PositiveInfinity, -2.0 + 1e-7, 0.5, 1.0, 3.0 }).reshape(2, 3);
        var agree = Equivalence.Measure(reference, same, 1e-4);
        Assert.True(agree.Passed);
        Assert.Null(agree.NonFinite);
        Assert.Equal(1e-7, agree.MaxAbsError, 1e-12);
        using var finite = torch.tensor(new[] { 1.0, 7.0, -2.0, 0.5, 1.0, 3.0 }).reshape(2, 3);
        var differ = Equivalence.Measure(reference, finite, 1e-4);
        Assert.False(differ.Passed);
        Assert.Equal(new NonFiniteOutputs(0, 1, 0, 0, 1), differ.NonFinite);
        using var nan = torch.tensor(new[] { 1.0, double.PositiveInfinity, -2.0, 0.5, double.NaN, 3.0 }).reshape(2, 3);
        var both = Equivalence.Measure(nan, nan, 1e-4);
        Assert.False(both.Passed);
        Assert.Equal(new NonFiniteOutputs(1, 1, 1, 1, 1), both.NonFinite);
        Assert.Equal(0, both.MaxRelError);
    }

    [Fact]
    public void InputMayBeABareTensorOrADictOfOne()
    {
        using var dir = Fixture.Temp();
        string plain = Plain(dir);
        string single = dir.File("single.safetensors");
        using (var io = CheckpointReader.Read(Fixture.Path_("trial22.io.pth")))
            AtomicFile.Write(single, s => SafetensorsFile.Write(s, new List<(string, torch.Tensor)> { ("images", io["input"]) }, new Dictionary<string, string>()));
        // torch.save(x, 'x.pt'), {'input': x, 'output': y}, and {'images': x}: the same two images.
        foreach (string input in new[] { Fixture.Path_("trial22_input_bare.pt"), Fixture.Path_("trial22.io.pth"), single })
        {
            var (code, stdout, stderr) = Rmnet("verify", Trial22, plain, "--samples", "0", "--input", input, "--json", "--quiet");
            Assert.True(code == 0, stderr);
            var v = Verification(stdout);
            Assert.Equal(2, v.GetProperty("samples").GetInt32());
            Assert.True(v.GetProperty("max_rel_error").GetDouble() is > 0 and < 1e-5, input);
        }
        // A bare tensor is input only: as a checkpoint it is still refused with what to save instead.
        var (refused, _, error) = Rmnet("convert", Fixture.Path_("trial22_input_bare.pt"), "-o", dir.File("x.onnx"), "--quiet");
        Assert.Equal(2, refused);
        Assert.Equal($"rmnet: error: {Fixture.Path_("trial22_input_bare.pt")}: holds a single tensor, not a state dict or a module{PickledWeights.ReSave}", error.Trim());
    }

    [Theory]
    [InlineData("f16.onnx")]
    [InlineData("f16.pth")]
    [InlineData("f16.safetensors")]
    public void AFloat16FileIsVerifiedAtTheFloat16ToleranceUnlessOneIsGiven(string name)
    {
        using var dir = Fixture.Temp();
        string f16 = dir.File(name);
        ConvertVerified(Trial22, f16, 32, "--dtype", "float16");
        var (code, stdout, stderr) = Rmnet("verify", Trial22, f16, "--input-size", "32", "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var root = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal("float16", root.GetProperty("converted_dtype").GetString());
        var v = root.GetProperty("verification");
        Assert.Equal(1e-2, v.GetProperty("tolerance").GetDouble());
        // Rounding every weight to float16 costs more than the float32 default allows, and far less than 1e-2.
        Assert.True(v.GetProperty("max_rel_error").GetDouble() is > 1e-4 and < 1e-3, stdout);
        (code, stdout, _) = Rmnet("verify", Trial22, f16, "--input-size", "32", "--quiet");
        Assert.Equal(0, code);
        Assert.Contains($"tolerance 1.00E-02: the float16 default, since {f16} holds float16 weights (--tolerance sets another)", stdout);
        // A tolerance given is kept.
        (code, stdout, _) = Rmnet("verify", Trial22, f16, "--input-size", "32", "--tolerance", "1e-4", "--json", "--quiet");
        Assert.Equal(1, code);
        Assert.Equal(1e-4, Verification(stdout).GetProperty("tolerance").GetDouble());
    }

    [Fact]
    public void AFloat32FileKeepsTheFloat32Tolerance()
    {
        using var dir = Fixture.Temp();
        var (code, stdout, stderr) = Rmnet("verify", Trial22, Plain(dir), "--input-size", "32", "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var root = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal("float32", root.GetProperty("converted_dtype").GetString());
        Assert.Equal(1e-4, root.GetProperty("verification").GetProperty("tolerance").GetDouble());
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1e-4")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    public void AToleranceThatIsNotAFiniteNumberAboveZeroIsAUsageError(string tolerance)
    {
        using var dir = Fixture.Temp();
        string plain = Plain(dir), output = dir.File("out.onnx");
        AssertUsageError($"--tolerance: {tolerance} is not a finite number above 0", "verify", Trial22, plain, "--tolerance", tolerance);
        AssertUsageError($"--tolerance: {tolerance} is not a finite number above 0", "convert", Trial22, "-o", output, "--verify", "--tolerance", tolerance);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void AnInputWithTheWrongChannelCountNamesTheInputFile()
    {
        using var dir = Fixture.Temp();
        string gray = Fixture.Path_("trial22_input_gray.pt");   // torch.save(x[:, :1]): [2, 1, 32, 32]
        var (code, stdout, stderr) = Rmnet("verify", Trial22, Plain(dir), "--input", gray, "--quiet");
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        string line = stderr.Trim();
        Assert.StartsWith($"rmnet: error: {gray}: the input batch has 1 channels, ", line);
        Assert.EndsWith(" takes 3", line);
        var (original, plainGraph) = OnnxPair(dir);
        (code, _, stderr) = Rmnet("verify", original, plainGraph, "--input", gray, "--quiet");
        Assert.Equal(2, code);
        Assert.Equal($"rmnet: error: {gray}: the input batch has shape [2, 1, 32, 32], the model fixes [?, 3, ?, ?]", stderr.Trim());
    }
}
