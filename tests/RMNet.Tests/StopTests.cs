using System.Diagnostics;
using System.Text.Json;
using RMNet.Cli;
using RMNet.IO;
using RMNet.Models;
using RMNet.Training;
using Xunit;
using Xunit.Abstractions;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

/// <summary>
/// SIGINT and SIGTERM sent to a real rmnet process stop it at the next safe point, remove its temporary files, write
/// no output and exit 130 / 143; a training run keeps its last finished epoch and resumes from it. Temporary files of
/// runs killed outright are removed by the next run in that directory.
/// </summary>
[Collection("Training")]   // they load both cores for seconds, like the training tests
public class StopTests(ITestOutputHelper output)
{
    static readonly TimeSpan Generous = TimeSpan.FromSeconds(120);

    /// <summary>Files and directories in <paramref name="dir"/>, by name.</summary>
    static string[] Entries(string dir) => Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order().ToArray()!;

    [Theory]
    [InlineData(ChildRmnet.Sigint, ExitCodes.Interrupted, "SIGINT", "plain.onnx")]
    [InlineData(ChildRmnet.Sigterm, ExitCodes.Terminated, "SIGTERM", "plain.onnx")]
    [InlineData(ChildRmnet.Sigint, ExitCodes.Interrupted, "SIGINT", "plain.pth")]   // pickled in one call: stopped between its writes
    public void ConvertStopsWhileWritingAndLeavesNothing(int signal, int expectedCode, string name, string file)
    {
        using var dir = Fixture.Temp();
        // A full-size ResNet-50 in the paper's dense form: about 1.1 GB to write, seconds of work, then a verification.
        using (var sd = FormulaCheckpoint.Create(ResNetSpec.Named("resnet50")))
            StateDictFile.Save(dir.File("resnet50.pth"), sd.Select(kv => (kv.Key, kv.Value)));
        using var child = new ChildRmnet(dir.Path, "convert", "resnet50.pth", "-o", file, "--rm-mode", "dense", "--verify");
        child.WaitForLine($"rmnet: writing {file}", Generous);
        // Into the write itself, early: the 1.1 GB write to the page cache can finish within 0.3 s (a CI run saw the
        // signal land in the verification after it).
        Thread.Sleep(30);
        var clock = Stopwatch.StartNew();
        child.Signal(signal);
        int code = child.WaitForExit(Generous);
        var stopped = clock.Elapsed;
        output.WriteLine($"{name}: exit {code} {stopped.TotalSeconds:F2} s after the signal\n{child.Stderr}");

        Assert.Equal(expectedCode, code);
        Assert.True(stopped < TimeSpan.FromSeconds(5), $"took {stopped.TotalSeconds:F1} s to stop");
        Assert.Contains($"rmnet: stopped by {name}; nothing unfinished was written", child.Stderr);
        // It stopped within the writing: the verification that follows a finished write never started.
        Assert.DoesNotContain("verifying", child.Stderr);
        Assert.Equal(new[] { "resnet50.pth" }, Entries(dir.Path));
        // Nor does the .NET runtime leave its diagnostic pipes behind (its shutdown, which a stopped run skips, would remove them).
        Assert.Empty(Directory.GetFiles(Path.GetTempPath(), $"*-{child.Pid}-*"));
    }

    [Fact]
    public void ASecondSignalEndsAtOnceAndSaysWhatMayRemain()
    {
        using var dir = Fixture.Temp();
        using (var sd = FormulaCheckpoint.Create(ResNetSpec.Named("resnet50")))
            StateDictFile.Save(dir.File("resnet50.pth"), sd.Select(kv => (kv.Key, kv.Value)));
        using var child = new ChildRmnet(dir.Path, "convert", "resnet50.pth", "-o", "plain.onnx", "--rm-mode", "dense", "--verify");
        // In verification the first stop has a gigabyte to delete: time enough for a second signal to arrive during it.
        child.WaitForLine("rmnet: verifying plain.onnx", Generous);
        child.Signal(ChildRmnet.Sigint);
        // Apart, or the kernel merges the two into one.
        Thread.Sleep(20);
        child.Signal(ChildRmnet.Sigint);
        int code = child.WaitForExit(Generous);
        output.WriteLine(child.Stderr);

        Assert.Equal(ExitCodes.Interrupted, code);
        Assert.Contains("rmnet: stopped at once by a second SIGINT; temporary files named .rmnet-", child.Stderr);
        Assert.DoesNotContain("plain.onnx", Entries(dir.Path));
    }

    [Fact]
    public void TheStopLineStartsALineOfItsOwnAfterAProgressBar()
    {
        var err = new StringWriter();
        using var stop = new StopRequest();
        var ctx = new CliContext(TextWriter.Null, err, json: false, verbose: false, new ProgressDisplay(err, interactive: true, quiet: false), stop);
        ctx.Progress.Report(new ProgressStep("converting", 3, 50));
        stop.Stop(ExitCodes.Interrupted, "SIGINT");

        int code = ctx.Run(() => { stop.Token.ThrowIfCancellationRequested(); return 0; });

        Assert.Equal(ExitCodes.Interrupted, code);
        Assert.EndsWith("3/50\nrmnet: stopped by SIGINT; nothing unfinished was written\n", err.ToString().ReplaceLineEndings("\n"));
    }

    [Fact]
    public void TrainStopsWithinAnEpochKeepsTheLastFinishedOneAndResumes()
    {
        using var dir = Fixture.Temp();
        string[] args = { "train", "-o", "model.pth", "--data", Fixture.FashionSubset, "--epochs", "3", "--batch", "32",
            "--train-limit", "512", "--test-limit", "128", "--no-augment", "--threads", "1" };
        using (var child = new ChildRmnet(dir.Path, args))
        {
            child.WaitForLine("rmnet: epoch 1/3: ", Generous);   // epoch 1 is saved; epoch 2 has begun
            var clock = Stopwatch.StartNew();
            child.Signal(ChildRmnet.Sigint);
            int code = child.WaitForExit(Generous);
            output.WriteLine($"exit {code} {clock.Elapsed.TotalSeconds:F2} s after the signal\n{child.Stderr}");
            Assert.Equal(ExitCodes.Interrupted, code);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed.TotalSeconds:F1} s to stop");
            Assert.DoesNotContain("epoch 2/3: ", child.Stderr);
        }
        // The checkpoint holds epoch 1 and nothing else was left.
        Assert.Equal(1, TrainingCheckpoint.ReadState(dir.File("model.pth"))!.EpochsDone);
        Assert.Equal(new[] { "model.pth", "model.pth.optim", "model.pth.state.json" }, Entries(dir.Path));

        var (resumeCode, stdout, stderr) = Rmnet(args.Select(a => a == "model.pth" ? dir.File("model.pth") : a).Concat(new[] { "--resume", "--json", "--quiet" }).ToArray());
        Assert.True(resumeCode == 0, stderr);
        var root = JsonDocument.Parse(stdout).RootElement;
        Assert.True(root.GetProperty("resumed").GetBoolean());
        Assert.Equal(new[] { 1, 2, 3 }, root.GetProperty("epochs").EnumerateArray().Select(e => e.GetProperty("epoch").GetInt32()));
        Assert.Equal(3, TrainingCheckpoint.ReadState(dir.File("model.pth"))!.EpochsDone);
    }

    [Fact]
    public void ANewRunRemovesTheTemporaryFilesOfDeadRunsOnly()
    {
        using var dir = Fixture.Temp();
        int dead = DeadProcessId();
        string hex = new('a', 32);
        string staleDir = dir.File($".rmnet-{dead}-{hex}"), staleFile = dir.File($".rmnet-{dead}-{new string('b', 32)}-plain.onnx");
        string liveDir = dir.File($".rmnet-{Environment.ProcessId}-{new string('c', 32)}"), notOurs = dir.File(".rmnet-notes");
        Directory.CreateDirectory(staleDir);
        File.WriteAllText(Path.Combine(staleDir, "plain.onnx"), "half a model");
        File.WriteAllText(staleFile, "half a model");
        Directory.CreateDirectory(liveDir);
        File.WriteAllText(notOurs, "someone's notes");

        var (code, _, stderr) = Rmnet("convert", Fixture.Path_("basic_narrow.pth"), "-o", dir.File("plain.onnx"));
        Assert.True(code == 0, stderr);
        Assert.False(Directory.Exists(staleDir));
        Assert.False(File.Exists(staleFile));
        Assert.True(Directory.Exists(liveDir));   // this process still runs: its files may be in use
        Assert.True(File.Exists(notOurs));        // not an rmnet temporary name
        var line = Assert.Single(stderr.Split('\n'), l => l.Contains("temporary"));
        Assert.Equal($"rmnet: removed 2 temporary files left in {dir.Path} by rmnet runs that were killed (process {dead})", line);
    }

    [Fact]
    public void AKilledConvertsLitterIsRemovedByTheNextRun()
    {
        using var dir = Fixture.Temp();
        using (var sd = FormulaCheckpoint.Create(ResNetSpec.Named("resnet50")))
            StateDictFile.Save(dir.File("resnet50.pth"), sd.Select(kv => (kv.Key, kv.Value)));
        int pid;
        using (var child = new ChildRmnet(dir.Path, "convert", "resnet50.pth", "-o", "plain.onnx", "--rm-mode", "dense"))
        {
            child.WaitForLine("rmnet: writing plain.onnx", Generous);
            child.KillOutright();
            child.WaitForExit(Generous);
            pid = TemporaryNames.Owner(Path.GetFileName(Assert.Single(Directory.GetDirectories(dir.Path, ".rmnet-*")))) ?? -1;
        }
        var (code, _, stderr) = Rmnet("convert", Fixture.Path_("basic_narrow.pth"), "-o", dir.File("small.onnx"));
        Assert.True(code == 0, stderr);
        Assert.Contains($"by rmnet runs that were killed (process {pid})", stderr);
        Assert.Equal(new[] { "resnet50.pth", "small.onnx" }, Entries(dir.Path));
    }

    [Fact]
    public void TemporaryNamesNameTheirProcess()
    {
        string name = TemporaryNames.New("plain.onnx");
        Assert.StartsWith($".rmnet-{Environment.ProcessId}-", name);
        Assert.EndsWith("-plain.onnx", name);
        Assert.Equal(Environment.ProcessId, TemporaryNames.Owner(name));
        Assert.Equal(Environment.ProcessId, TemporaryNames.Owner(TemporaryNames.New()));
        Assert.Null(TemporaryNames.Owner(".rmnet-notes"));
        Assert.Null(TemporaryNames.Owner("rmnet-12-" + new string('a', 32)));
        Assert.Null(TemporaryNames.Owner(".rmnet-12-short"));
    }

    /// <summary>The id of a process that has just ended.</summary>
    static int DeadProcessId()
    {
        using var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        p.WaitForExit();
        return p.Id;
    }
}
