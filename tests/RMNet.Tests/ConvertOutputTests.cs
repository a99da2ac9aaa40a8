using Xunit;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

/// <summary>Output names refused before anything is loaded or converted, naming what the user gave.</summary>
public class ConvertOutputTests
{
    static string Trial22 => Fixture.Path_("trial22.pth");

    [Theory]
    [InlineData("convert", "--json")]
    [InlineData("convert", "-q")]
    [InlineData("prune", "--force")]
    [InlineData("train", "--resume")]
    public void AnOutputNameThatIsAnOptionIsAUsageError(string command, string name)
    {
        string cwd = Directory.GetCurrentDirectory();
        var args = command == "train" ? new[] { command, "-o", name } : new[] { command, Trial22, "-o", name };
        var (code, _, stderr) = Rmnet(args);
        Assert.Equal(2, code);
        string subject = command == "train" ? "rmnet train" : Trial22;
        Assert.Equal($"rmnet: error: {subject}: --output: '{name}' looks like an option, not a file name (for a file named so, write ./{name}) (see 'rmnet {command} --help')",
            stderr.Trim());
        Assert.False(File.Exists(Path.Combine(cwd, name)));
    }

    [Fact]
    public void AnUnknownOutputExtensionIsRefusedBeforeLoadingNamingTheGivenPath()
    {
        using var dir = Fixture.Temp();
        string output = Path.Combine(dir.Path, "out", "x.bin");   // its folder does not exist either
        var (code, stdout, stderr) = Rmnet("convert", Trial22, "-o", output);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        // One line, naming the output as given: nothing was loaded (no progress line), no temporary path.
        Assert.Equal($"rmnet: error: {output}: unknown output format; use one of .onnx, .safetensors, .pth, .pt", stderr.Trim());
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }
}
