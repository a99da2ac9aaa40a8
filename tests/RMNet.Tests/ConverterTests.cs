using RMNet.Verification;
using Xunit;

namespace RMNet.Tests;

/// <summary>The front door: checkpoint in, plain file out, checked; errors share RMNetException.</summary>
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
    }

    [Fact]
    public void AMissingCheckpointIsAnRMNetExceptionWithExitCodeTwo()
    {
        using var dir = new TempDir();
        var e = Assert.ThrowsAny<RMNetException>(() => Converter.Convert(dir.File("missing.pth"), dir.File("plain.onnx")));
        Assert.Equal(2, e.ExitCode);
        Assert.False(File.Exists(dir.File("plain.onnx")));
    }
}
