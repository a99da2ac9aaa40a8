using System.Runtime.InteropServices;

namespace RMNet.Cli;

/// <summary>
/// A request to stop the running command, from SIGINT (Ctrl-C) or SIGTERM: its token is cancelled, the command
/// stops at its next safe point (between blocks, tensors, batches, runs; ONNX Runtime mid-run), deletes what it
/// wrote and exits with <see cref="ExitCode"/> (130 for SIGINT, 143 for SIGTERM, the shell's 128 + signal).
/// A second signal ends the process at once, with one line that says so; what that leaves behind carries rmnet's
/// temporary names and the next run in that directory removes it.
/// </summary>
/// <remarks>
/// Not System.CommandLine's own termination handling: that serves asynchronous actions only, reports an
/// OperationCanceledException as exit 1, and after its timeout returns while the command still runs, so temporary
/// files would outlive the process.
/// </remarks>
internal sealed class StopRequest : IDisposable
{
    readonly CancellationTokenSource _source = new();
    readonly List<PosixSignalRegistration> _registrations = new();
    int _exitCode;

    /// <summary>Cancelled once a stop is requested.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>The exit code the stop calls for (130 or 143); <see cref="ExitCodes.Success"/> while none was requested.</summary>
    public int ExitCode => Volatile.Read(ref _exitCode);

    /// <summary>The signal's name, for the one line that reports the stop.</summary>
    public string Reason { get; private set; } = "";

    /// <summary>
    /// A request that SIGINT and SIGTERM make (where the platform has them). Call it first thing in the process:
    /// a SIGINT the process was started to ignore (a script's <c>rmnet ... &amp;</c>) is made to count as well, which
    /// works only before .NET sets up its own signal handling (on first use of the console).
    /// </summary>
    public static StopRequest OnSignals()
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            // .NET leaves a signal ignored at start-up ignored; a stop requested with kill -INT would then go unheard.
            const int sigint = 2;
            var old = new byte[256];   // struct sigaction; its first member is the handler on Linux and macOS
            if (QuerySignalAction(sigint, IntPtr.Zero, old) == 0 && BitConverter.ToInt64(old, 0) == 1 /* SIG_IGN */)
                SetSignalHandler(sigint, IntPtr.Zero /* SIG_DFL */);
        }
        var request = new StopRequest();
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
        {
            try { request._registrations.Add(PosixSignalRegistration.Create(signal, request.OnSignal)); }
            catch (PlatformNotSupportedException) { }   // the default handling stays: the process ends
        }
        return request;
    }

    /// <summary>Ends a progress bar being drawn, so that the line a second signal writes starts a line of its own.</summary>
    public Action? EndProgressLine { get; set; }

    /// <summary>Requests the stop (the first request wins); true where this call made it.</summary>
    public bool Stop(int exitCode, string reason)
    {
        if (Interlocked.CompareExchange(ref _exitCode, exitCode, 0) != 0) return false;
        Reason = reason;
        _source.Cancel();
        return true;
    }

    void OnSignal(PosixSignalContext context)
    {
        bool sigint = context.Signal == PosixSignal.SIGINT;
        string name = sigint ? "SIGINT" : "SIGTERM";
        int code = sigint ? ExitCodes.Interrupted : ExitCodes.Terminated;
        context.Cancel = true;
        if (Stop(code, name)) return;
        // Only the first signal waits for the command to clean up; a second one ends the process at once, saying what it may leave.
        try
        {
            EndProgressLine?.Invoke();
            Console.Error.WriteLine($"rmnet: stopped at once by a second {name}; temporary files named .rmnet-{Environment.ProcessId}-* may remain, and the next rmnet run in their directory removes them");
        }
        catch (IOException) { }   // stderr closed: end all the same
        ExitNow(code);
    }

    /// <summary>
    /// Runs <paramref name="step"/>, a step with no safe point of its own that touches nothing the command later
    /// disposes (reading a checkpoint: seconds for a large one), on a worker thread, and stops waiting for it when
    /// <paramref name="cancellationToken"/> is cancelled; the step then finishes unobserved while the process ends.
    /// </summary>
    public static T Abandonable<T>(Func<T> step, CancellationToken cancellationToken)
    {
        if (!cancellationToken.CanBeCanceled) return step();
        var running = Task.Run(step, CancellationToken.None);
        try
        {
            running.Wait(cancellationToken);
        }
        catch (AggregateException) { }   // the step's own exception is rethrown unwrapped below
        return running.GetAwaiter().GetResult();
    }

    /// <summary>
    /// Ends the process with <paramref name="exitCode"/> once a stopped command has cleaned up, without the runtime's and
    /// native libraries' exit handlers: a model load left running in ONNX Runtime (it cannot be stopped midway) would
    /// otherwise race ONNX Runtime's own teardown and crash the exit.
    /// </summary>
    public static void ExitNow(int exitCode)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        RemoveRuntimeFiles();
        if (!OperatingSystem.IsWindows()) ExitWithoutHandlers(exitCode);
        Environment.Exit(exitCode);
    }

    /// <summary>
    /// The .NET runtime's diagnostic pipes and socket of this process in the temporary directory
    /// (<c>clr-debug-pipe-&lt;pid&gt;-*</c>, <c>dotnet-diagnostic-&lt;pid&gt;-*</c>): its shutdown removes them, which an exit
    /// without handlers skips, so they are removed here.
    /// </summary>
    static void RemoveRuntimeFiles()
    {
        try
        {
            string pid = $"-{Environment.ProcessId}-";
            foreach (var file in Directory.EnumerateFiles(Path.GetTempPath(), $"*{pid}*"))
            {
                string name = Path.GetFileName(file);
                if (name.StartsWith("clr-debug-pipe" + pid, StringComparison.Ordinal) || name.StartsWith("dotnet-diagnostic" + pid, StringComparison.Ordinal))
                    File.Delete(file);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    [DllImport("libc", EntryPoint = "_exit")]
    static extern void ExitWithoutHandlers(int status);

    [DllImport("libc", EntryPoint = "sigaction")]
    static extern int QuerySignalAction(int signal, IntPtr action, [Out] byte[] oldAction);

    [DllImport("libc", EntryPoint = "signal")]
    static extern IntPtr SetSignalHandler(int signal, IntPtr handler);

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var registration in _registrations) registration.Dispose();
        _source.Dispose();
    }
}
