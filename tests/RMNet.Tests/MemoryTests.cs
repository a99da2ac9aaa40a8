using RMNet.Cli;
using Xunit;

namespace RMNet.Tests;

/// <summary>
/// convert, verify and bench refuse a model the machine's memory cannot hold, naming the estimate and the memory
/// available, before the heavy work; the available memory is set for the child process (RMNET_MEMORY_AVAILABLE).
/// </summary>
public class MemoryTests
{
    static readonly TimeSpan Generous = TimeSpan.FromSeconds(120);

    static (int Code, string Stderr) Run(string dir, string available, params string[] args)
    {
        using var child = new ChildRmnet(dir, new Dictionary<string, string> { [MemoryEstimate.OverrideVariable] = available }, args);
        int code = child.WaitForExit(Generous);
        return (code, child.Stderr);
    }

    [Fact]
    public void ConvertRefusesWhatWouldNotFitNamingTheEstimateAndTheMemoryAvailable()
    {
        using var dir = Fixture.Temp();
        // A full-size ResNet-50 (98 MiB) in the dense form (1.1 GB out), on a machine with 1 GiB to spare: loading and
        // converting fit, writing and verifying the output would not.
        using (var sd = FormulaCheckpoint.Create(Models.ResNetSpec.Named("resnet50")))
            IO.StateDictFile.Save(dir.File("resnet50.pth"), sd.Select(kv => (kv.Key, kv.Value)));
        var (code, stderr) = Run(dir.Path, "1G", "convert", "resnet50.pth", "-o", "plain.onnx", "--rm-mode", "dense", "--verify");
        Assert.Equal(ExitCodes.BadInput, code);
        string error = Assert.Single(stderr.Split('\n'), l => l.StartsWith("rmnet: error:"));
        Assert.Matches(@"^rmnet: error: resnet50\.pth: writing plain\.onnx and verifying it needs about \d\.\d GiB of memory at its peak and 1\.0 GiB is available, so it was not started; "
            + @"the default --rm-mode grouped is smaller \(set RMNET_MEMORY_AVAILABLE to override\)$", error);
        Assert.Equal(new[] { "resnet50.pth" }, Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));   // no output, no temporary files
    }

    [Fact]
    public void ConvertRefusesBeforeLoadingWhatLoadingAloneWouldNotFit()
    {
        using var dir = Fixture.Temp();
        // Reading a checkpoint and converting it hold about six times the checkpoint besides the process (256 MiB):
        // with 100 MiB to spare nothing is read. With enough memory the same conversion runs.
        var (code, stderr) = Run(dir.Path, "100M", "convert", Fixture.Path_("iresnet18_narrow.pth"), "-o", "face.onnx", "--negative-input", "split");
        Assert.Equal(ExitCodes.BadInput, code);
        string error = Assert.Single(stderr.Split('\n'), l => l.StartsWith("rmnet: error:"));
        Assert.Matches(@"^rmnet: error: .*iresnet18_narrow\.pth: loading and converting .*iresnet18_narrow\.pth needs about 0\.\d GiB of memory at its peak and 0\.1 GiB is available, so it was not started \(set RMNET_MEMORY_AVAILABLE to override\)$", error);
        Assert.DoesNotContain("rmnet: loading", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
        Assert.Equal(0, Run(dir.Path, "64G", "convert", Fixture.Path_("iresnet18_narrow.pth"), "-o", "face.onnx", "--negative-input", "split", "--quiet").Code);
        Assert.Equal(new[] { "face.onnx" }, Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void OnnxConvertRefusesBeforeWritingWhatWouldNotFit()
    {
        using var dir = Fixture.Temp();
        // The output's size is known after the passes: with 1 MiB to spare, writing and verifying are not started.
        var (code, stderr) = Run(dir.Path, "1M", "convert", Fixture.Path_("onnx/basic_narrow_opset13.onnx"), "-o", "plain.onnx", "--verify");
        Assert.Equal(ExitCodes.BadInput, code);
        string error = Assert.Single(stderr.Split('\n'), l => l.StartsWith("rmnet: error:"));
        Assert.Matches(@"basic_narrow_opset13\.onnx: writing plain\.onnx and verifying it needs about 0\.\d+ GiB of memory at its peak and 0\.0 GiB is available", error);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
        Assert.Equal(0, Run(dir.Path, "64G", "convert", Fixture.Path_("onnx/basic_narrow_opset13.onnx"), "-o", "plain.onnx", "--verify", "--quiet").Code);
    }

    [Fact]
    public void VerifyAndBenchRefuseToo()
    {
        using var dir = Fixture.Temp();
        string basic = Fixture.Path_("basic_narrow.pth");
        Assert.Equal(0, Run(dir.Path, "unlimited", "convert", basic, "-o", "plain.onnx", "--quiet").Code);
        var (verifyCode, verifyErr) = Run(dir.Path, "100M", "verify", basic, "plain.onnx");
        Assert.Equal(ExitCodes.BadInput, verifyCode);
        Assert.Contains("rmnet: error: plain.onnx: verifying needs about 0.", verifyErr);
        var (benchCode, benchErr) = Run(dir.Path, "100M", "bench", basic, "--runs", "1");
        Assert.Equal(ExitCodes.BadInput, benchCode);
        Assert.Contains("benchmarking needs about 0.", benchErr);
        var (badCode, badErr) = Run(dir.Path, "lots", "verify", basic, "plain.onnx");
        Assert.Equal(ExitCodes.BadInput, badCode);
        Assert.Contains("rmnet: error: RMNET_MEMORY_AVAILABLE: 'lots' is not a size", badErr);
    }
}
