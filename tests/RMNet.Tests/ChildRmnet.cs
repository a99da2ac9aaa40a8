using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Xunit;

namespace RMNet.Tests;

/// <summary>
/// rmnet run as a real child process (the build's apphost beside the tests), for what only a process can show:
/// signals, exit codes and what a stopped or killed run leaves on disk. stderr is read line by line as it comes.
/// </summary>
public sealed class ChildRmnet : IDisposable
{
    /// <summary>SIGINT and SIGTERM, as kill(2) numbers them on Linux.</summary>
    public const int Sigint = 2, Sigterm = 15;

    readonly Process _process;
    readonly BlockingCollection<string> _lines = new();
    readonly ConcurrentQueue<string> _all = new();

    /// <summary>The apphost the test build copies beside the tests.</summary>
    public static string Executable => Path.Combine(AppContext.BaseDirectory, "RMNet.Cli");

    /// <summary>Starts <c>rmnet args</c> in <paramref name="workingDirectory"/>.</summary>
    public ChildRmnet(string workingDirectory, params string[] args) : this(workingDirectory, new Dictionary<string, string>(), args) { }

    /// <summary>Starts <c>rmnet args</c> in <paramref name="workingDirectory"/> with <paramref name="environment"/> added to the environment.</summary>
    public ChildRmnet(string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo(Executable)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (name, value) in environment) start.Environment[name] = value;
        _process = Process.Start(start)!;
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) { _lines.CompleteAdding(); return; }
            _all.Enqueue(e.Data);
            _lines.Add(e.Data);
        };
        _process.OutputDataReceived += (_, _) => { };
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
    }

    /// <summary>The process id (the runtime's own files in the temporary directory carry it).</summary>
    public int Pid => _process.Id;

    /// <summary>Everything written to stderr so far.</summary>
    public string Stderr => string.Join("\n", _all);

    /// <summary>Waits for a stderr line containing <paramref name="text"/>; fails the test if the process ends or the time runs out first.</summary>
    public void WaitForLine(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (!_lines.TryTake(out var line, TimeSpan.FromMilliseconds(100)))
            {
                if (_lines.IsCompleted) break;
                continue;
            }
            if (line.Contains(text, StringComparison.Ordinal)) return;
        }
        Assert.Fail($"no stderr line with '{text}' within {timeout.TotalSeconds} s; stderr:\n{Stderr}");
    }

    /// <summary>Sends <paramref name="signal"/> (kill(2)), as a shell's kill or a terminal's Ctrl-C does.</summary>
    public void Signal(int signal) => Assert.Equal(0, Kill(_process.Id, signal));

    /// <summary>Kills the process outright (SIGKILL): no clean-up runs.</summary>
    public void KillOutright() => _process.Kill();

    /// <summary>Waits for the exit and returns the exit code; fails the test after <paramref name="timeout"/>.</summary>
    public int WaitForExit(TimeSpan timeout)
    {
        Assert.True(_process.WaitForExit(timeout), $"still running after {timeout.TotalSeconds} s; stderr:\n{Stderr}");
        _process.WaitForExit();   // drains the redirected streams
        return _process.ExitCode;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill();
        _process.Dispose();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int Kill(int pid, int signal);
}
