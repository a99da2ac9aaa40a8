using RMNet.IO;
using RMNet.Onnx;
using RMNet.Rm;
using RMNet.Verification;
using Xunit;

namespace RMNet.Tests;

/// <summary>The front door: checkpoint or ONNX model in, plain file out, checked; errors share RMNetException.</summary>
public class ConverterTests
{
    [Fact]
    public void ConvertsWritesAndVerifiesACheckpoint()
    {
        using var dir = new TempDir();
        string output = dir.File("plain.onnx");
        var result = Converter.Convert(Fixture.Path_("basic_narrow.pth"), output,
            new ConvertOptions(Verify: new VerifyOptions(Samples: 1, InputSize: 32)));
        Assert.True(result.Equivalent, $"max rel error {result.Verification.MaxRelError}");
        Assert.True(new FileInfo(output).Length > 0);
        Assert.Equal(output, result.Output);
        Assert.Equal((5, 0), (result.ResidualJoins, result.ResidualJoinsRemaining));   // basic_narrow: five blocks
    }

    [Fact]
    public void AMissingCheckpointIsAnRMNetExceptionWithExitCodeTwo()
    {
        using var dir = new TempDir();
        var e = Assert.ThrowsAny<RMNetException>(() => Converter.Convert(dir.File("missing.pth"), dir.File("plain.onnx")));
        Assert.Equal(2, e.ExitCode);
        Assert.False(File.Exists(dir.File("plain.onnx")));
    }

    static string Onnx(string name) => Fixture.Path_($"onnx/{name}.onnx");

    [Theory]
    [InlineData("basic_narrow", RmMode.Grouped)]
    [InlineData("bottleneck_narrow", RmMode.Dense)]
    [InlineData("resnext_narrow", RmMode.Grouped)]
    public void ConvertsAnOnnxExportAsTheCliDoesAndMatchesPyTorch(string name, RmMode mode)
    {
        using var dir = new TempDir();
        string output = dir.File("plain.onnx");
        var result = Converter.Convert(Onnx($"{name}_ckpt_opset13"), output,
            new ConvertOptions(Mode: mode, Verify: new VerifyOptions(Samples: 2, InputSize: 32)));
        // Checked in ONNX Runtime against the original graph, as `rmnet convert model.onnx --verify` does.
        Assert.True(result.Equivalent, $"max rel error {result.Verification.MaxRelError}");
        Assert.Equal(2, result.Verification.Samples);
        Assert.Equal(output, result.Output);
        Assert.StartsWith("ONNX graph", result.Architecture);
        var joins = OnnxConversion.Convert(Onnx($"{name}_ckpt_opset13"), mode).JoinsFound;
        Assert.Equal((joins, 0), (result.ResidualJoins, result.ResidualJoinsRemaining));
        Assert.True(joins > 0);
        Assert.Equal("rmnet", OnnxModelFile.Load(output).ProducerName);
        Assert.Single(Directory.GetFileSystemEntries(dir.Path));   // no temporary left beside it

        // The written file computes what PyTorch computed for the checkpoint the export came from.
        var io = Fixture.Io(name);
        using var runner = new OnnxRuntimeRunner(output);
        var report = Equivalence.Measure(io["output"], runner.Run(io["input"]), 1e-4);
        Assert.True(report.Passed, $"against PyTorch: max rel error {report.MaxRelError}");
    }

    [Fact]
    public void AnOnnxModelWithJoinsRmCannotMakePlainIsConvertedAndTheRemainingJoinsCounted()
    {
        using var dir = new TempDir();
        var result = Converter.Convert(Onnx("unplainable_narrow_opset13"), dir.File("plain.onnx"),
            new ConvertOptions(Verify: new VerifyOptions(Samples: 1, InputSize: 32)));
        Assert.True(result.Equivalent, $"max rel error {result.Verification.MaxRelError}");
        Assert.Equal((2, 2), (result.ResidualJoins, result.ResidualJoinsRemaining));
    }

    public static IEnumerable<object[]> OptionsOnnxCannotHonour() => new[]
    {
        new object[] { new ConvertOptions(Dtype: OutputDtype.Float16), "plain.onnx", "Dtype Float16 does not apply to an ONNX model" },
        new object[] { new ConvertOptions(Architecture: "resnet18"), "plain.onnx", "Architecture 'resnet18' does not apply to an ONNX model" },
        new object[] { new ConvertOptions(NumClasses: 10), "plain.onnx", "NumClasses 10 does not apply to an ONNX model" },
        new object[] { new ConvertOptions(), "plain.txt", "unknown output format; use one of .onnx" },
    };

    [Theory]
    [MemberData(nameof(OptionsOnnxCannotHonour))]
    public void OptionsThatDoNotApplyToOnnxInputAreRefusedBeforeAnythingIsWritten(ConvertOptions options, string output, string problem)
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ModelInputException>(() => Converter.Convert(Onnx("basic_narrow_opset13"), dir.File(output), options));
        Assert.Contains(problem, e.Message);
        Assert.Equal(2, e.ExitCode);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData("basic_narrow.pth", "model.pth")]
    [InlineData("timm_resnet_d_basic_narrow.pth", "model.pth")]
    public void ACheckpointIsNotConvertedOntoItselfNorThroughALink(string fixture, string name)
    {
        using var dir = new TempDir();
        string model = dir.File(name);
        File.Copy(Fixture.Path_(fixture), model);
        var e = Assert.Throws<ModelInputException>(() => Converter.Convert(model, model));
        Assert.Contains("output path is the input file", e.Message);
        File.CreateSymbolicLink(dir.File("link.pth"), model);
        e = Assert.Throws<ModelInputException>(() => Converter.Convert(dir.File("link.pth"), model));
        Assert.Contains("output path is the input file", e.Message);
        Assert.Equal(File.ReadAllBytes(Fixture.Path_(fixture)), File.ReadAllBytes(model));
        Assert.Equal(new[] { "link.pth", name }.Order(), Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName).Order());
    }

    public static IEnumerable<object[]> OptionsNoCheckCanRunWith() => new[]
    {
        new object[] { new VerifyOptions(Samples: -1), "Samples" },
        new object[] { new VerifyOptions(Samples: 0), "Samples" },
        new object[] { new VerifyOptions(InputSize: 0), "InputSize" },
        new object[] { new VerifyOptions(Tolerance: double.NaN), "Tolerance" },
        new object[] { new VerifyOptions(Tolerance: -1), "Tolerance" },
    };

    [Theory]
    [MemberData(nameof(OptionsNoCheckCanRunWith))]
    public void VerifySettingsNoCheckCanRunWithAreArgumentErrorsBeforeAnythingIsWritten(VerifyOptions verify, string parameter)
    {
        using var dir = new TempDir();
        foreach (var input in new[] { Fixture.Path_("basic_narrow.pth"), Onnx("basic_narrow_opset13") })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => Converter.Convert(input, dir.File("plain.onnx"), new ConvertOptions(Verify: verify)));
            Assert.Equal(parameter, e.ParamName);
            Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
        }
    }

    [Fact]
    public void ATimmResNetDCheckpointGoesThroughTheGraphEngine()
    {
        using var dir = new TempDir();
        var result = Converter.Convert(Fixture.Path_("timm_resnet_d_bottleneck_narrow.pth"), dir.File("plain.onnx"),
            new ConvertOptions(Verify: new VerifyOptions(Samples: 2, InputSize: 64)));
        Assert.True(result.Equivalent, $"{result.Verification.MaxRelError}");
        Assert.StartsWith("timm ResNet-D", result.Architecture);
        Assert.Equal((5, 0), (result.ResidualJoins, result.ResidualJoinsRemaining));
        Assert.Equal(new[] { "plain.onnx" }, Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
        // Or as a plain safetensors, read back from the plain graph and run in TorchSharp.
        var safetensors = Converter.Convert(Fixture.Path_("timm_resnet_d_bottleneck_narrow.pth"), dir.File("plain.safetensors"),
            new ConvertOptions(Verify: new VerifyOptions(Samples: 2, InputSize: 64)));
        Assert.True(safetensors.Equivalent, $"{safetensors.Verification.MaxRelError}");
        Assert.Equal(new[] { "plain.onnx", "plain.safetensors" }, Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName).Order());
        var e = Assert.Throws<ModelInputException>(() => Converter.Convert(Fixture.Path_("timm_resnet_d_bottleneck_narrow.pth"), dir.File("p.onnx"),
            new ConvertOptions(Dtype: OutputDtype.Float16)));
        Assert.Contains("does not apply to timm ResNet-D", e.Message);
    }

    [Fact]
    public void APlainFileRmnetWroteIsNamedAsSuch()
    {
        using var dir = new TempDir();
        Converter.Convert(Fixture.Path_("basic_narrow.pth"), dir.File("plain.pth"), new ConvertOptions(Verify: new VerifyOptions(Samples: 1, InputSize: 32)));
        var e = Assert.Throws<ModelInputException>(() => Converter.Convert(dir.File("plain.pth"), dir.File("again.onnx")));
        Assert.Contains("already a plain network written by rmnet", e.Message);
    }

    [Fact]
    public void AnOnnxModelIsNotConvertedOntoItself()
    {
        using var dir = new TempDir();
        string model = dir.File("model.onnx");
        File.Copy(Onnx("basic_narrow_opset13"), model);
        var e = Assert.Throws<ModelInputException>(() => Converter.Convert(model, model));
        Assert.Contains("output path is the input file", e.Message);
        Assert.Equal(File.ReadAllBytes(Onnx("basic_narrow_opset13")), File.ReadAllBytes(model));
    }
}

public class MissingBackendTests
{
    [Fact]
    public void AnAppWithoutATorchSharpBackendIsToldSoNotThatTheFileIsBad()
    {
        var missing = new TypeInitializationException("TorchSharp.torch", new DllNotFoundException("libLibTorchSharp"));
        var e = Assert.Throws<InvalidOperationException>(() => IO.CheckpointReader.Guarded<int>("model.pth", IO.FileFormat.TorchZip, () => throw missing));
        Assert.Contains("must reference a TorchSharp backend package (TorchSharp-cpu", e.Message);
        // Any other failure still names the file.
        var other = Assert.Throws<ModelInputException>(() => IO.CheckpointReader.Guarded<int>("model.pth", IO.FileFormat.TorchZip, () => throw new InvalidDataException("bad zip")));
        Assert.Contains("model.pth", other.Message);
    }
}
