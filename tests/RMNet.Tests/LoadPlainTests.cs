using System.Diagnostics;
using System.Globalization;
using Xunit;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

/// <summary>A fact that needs Debian's PyTorch (<c>/usr/bin/python3</c> with <c>torch</c>); skipped, with the reason, where it is missing.</summary>
public sealed class PyTorchFactAttribute : FactAttribute
{
    static readonly Lazy<string?> Missing = new(() =>
    {
        if (!File.Exists(LoadPlainTests.Python)) return $"{LoadPlainTests.Python} is missing";
        var (code, _, err) = LoadPlainTests.RunPython("import torch");
        return code == 0 ? null : $"{LoadPlainTests.Python} cannot import torch: {err.Trim()}";
    });

    public PyTorchFactAttribute()
    {
        if (Missing.Value is string reason) Skip = reason;
    }
}

/// <summary>tools/pytorch/load_plain.py, run by PyTorch on rmnet's plain files.</summary>
public class LoadPlainTests
{
    public const string Python = "/usr/bin/python3";

    public static (int Code, string Out, string Err) RunPython(params string[] args)
    {
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(args.Length == 1 ? "-c" : args[0]);
        foreach (var a in args.Length == 1 ? args : args.Skip(1)) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr);
    }

    [PyTorchFact]
    public void Float16PlainPthRunsOnTheCpuAndMatchesPyTorchsOriginal()
    {
        using var dir = Fixture.Temp();
        string f16 = dir.File("f16.pth");
        var (code, _, stderr) = Rmnet("convert", Fixture.Path_("trial22.pth"), "-o", f16, "--dtype", "float16", "--quiet");
        Assert.True(code == 0, stderr);
        string tools = Path.Combine(PackagePinTests.RepositoryRoot(), "tools", "pytorch");
        // As a user runs it: no .float(); the input is the bare tensor torch.save(x) wrote.
        string script = $$"""
            import sys, torch
            sys.path.insert(0, {{Quote(tools)}})
            from load_plain import load_plain
            model = load_plain({{Quote(f16)}})
            io = torch.load({{Quote(Fixture.Path_("trial22.io.pth"))}})
            x = torch.load({{Quote(Fixture.Path_("trial22_input_bare.pt"))}})
            with torch.no_grad():
                y = model(x)
            err = (y - io["output"]).abs().amax(1) / io["output"].abs().amax(1)
            print(next(model.parameters()).dtype, float(err.max()))
            """;
        var (pyCode, stdout, pyErr) = RunPython(script);
        Assert.True(pyCode == 0, pyErr);
        var fields = stdout.Trim().Split(' ');
        Assert.Equal("torch.float32", fields[0]);
        double rel = double.Parse(fields[1], CultureInfo.InvariantCulture);
        // float16 rounding of the weights, as rmnet's own verify measures it (2.8e-4), far from float16 overflow or garbage.
        Assert.True(rel is > 1e-5 and < 1e-3, stdout);
        // The shell form prints the layers and the output.
        (pyCode, stdout, pyErr) = RunPython(Path.Combine(tools, "load_plain.py"), f16, Fixture.Path_("trial22_input_bare.pt"));
        Assert.True(pyCode == 0, pyErr);
        Assert.Contains("tensor([[", stdout);
    }

    static string Quote(string s) => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'") + "'";
}
