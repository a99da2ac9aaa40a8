using System.Text.Json;
using System.Text.Json.Serialization;

namespace RMNet.Cli;

/// <summary>Exit codes of every rmnet command (documented in the README).</summary>
internal static class ExitCodes
{
    /// <summary>Success (and, for verify, equivalent within the tolerance).</summary>
    public const int Success = 0;
    /// <summary>The converted model is not equivalent to the original within the tolerance.</summary>
    public const int NotEquivalent = 1;
    /// <summary>Bad input or usage: missing/unreadable/malformed file, wrong option, unconvertible model.</summary>
    public const int BadInput = RMNetException.BadInputExitCode;
    /// <summary>An internal error (a bug in rmnet): please report it with the --verbose output.</summary>
    public const int InternalError = 3;
    /// <summary>Stopped by SIGINT (Ctrl-C): 128 + 2, as a shell reports it; nothing unfinished was written.</summary>
    public const int Interrupted = 130;
    /// <summary>Stopped by SIGTERM: 128 + 15; nothing unfinished was written.</summary>
    public const int Terminated = 143;
}

/// <summary>Where a command writes: stdout for results, stderr for errors; JSON or text.</summary>
internal sealed class CliContext(TextWriter stdout, TextWriter stderr, bool json, bool verbose, ProgressDisplay progress, StopRequest? stop = null)
{
    /// <summary>Serializer settings of every --json document.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // Messages quote names ('layer1.0.add'): written as they are, not as \u0027 (the documents go to files and pipes, not HTML).
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public TextWriter Out { get; } = stdout;
    public TextWriter Err { get; } = stderr;
    public bool Json { get; } = json;
    public bool Verbose { get; } = verbose;
    public ProgressDisplay Progress { get; } = progress;
    readonly StopRequest _stop = Attach(stop ?? new StopRequest(), progress);

    static StopRequest Attach(StopRequest stop, ProgressDisplay progress)
    {
        stop.EndProgressLine = progress.EndBar;
        return stop;
    }

    /// <summary>Cancelled when the command is asked to stop (SIGINT, SIGTERM); long operations take it.</summary>
    public CancellationToken Cancellation => _stop.Token;

    /// <summary>
    /// Removes the temporary files and directories that rmnet runs killed outright left in the directory of
    /// <paramref name="path"/> (or in <paramref name="path"/> itself where it is a directory), saying so in one log line.
    /// </summary>
    public void RemoveStaleTemporaries(string path)
    {
        string full = Path.GetFullPath(path);
        string directory = Directory.Exists(full) ? full : Path.GetDirectoryName(full)!;
        var removed = RMNet.IO.TemporaryNames.RemoveStale(directory);
        if (removed.Count == 0) return;
        var owners = removed.Select(p => RMNet.IO.TemporaryNames.Owner(Path.GetFileName(p))).Distinct();
        Progress.Stage($"removed {removed.Count} temporary {(removed.Count == 1 ? "file" : "files")} left in {directory} by rmnet runs that were killed (process {string.Join(", ", owners)})");
    }

    /// <summary>Writes a line of human-readable output (suppressed under --json).</summary>
    public void Line(string text = "")
    {
        if (!Json) Out.WriteLine(text);
    }

    /// <summary>Writes the command's JSON document (under --json only).</summary>
    public void Document(object value)
    {
        if (Json) Out.WriteLine(JsonSerializer.Serialize(value, value.GetType(), JsonOptions));
    }

    /// <summary>
    /// Runs a command body, turning known failures into one line on stderr and an exit code; the stack trace
    /// is printed only with --verbose.
    /// </summary>
    public int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (OperationCanceledException e) when (_stop.Token.IsCancellationRequested)
        {
            // The usings on the way out have deleted the temporary files by now.
            Progress.EndBar();
            Err.WriteLine($"rmnet: stopped by {_stop.Reason}; nothing unfinished was written");
            if (Json) Out.WriteLine(JsonSerializer.Serialize(new { error = $"stopped by {_stop.Reason}", exit_code = _stop.ExitCode }, JsonOptions));
            if (Verbose) Err.WriteLine(e.ToString());
            return _stop.ExitCode;
        }
        catch (RmException e)
        {
            return Fail(e.ExitCode, $"cannot remove residual connections exactly: {e.Message}", e);
        }
        catch (RMNetException e)
        {
            return Fail(e.ExitCode, e.Message, e);
        }
        catch (Exception e)
        {
            return Fail(ExitCodes.InternalError, $"internal error: {e.GetType().Name}: {e.Message}", e);
        }
    }

    int Fail(int code, string message, Exception e)
    {
        Progress.EndBar();
        Err.WriteLine($"rmnet: error: {message.ReplaceLineEndings(" ")}");
        if (Json) Out.WriteLine(JsonSerializer.Serialize(new { error = message, exit_code = code }, JsonOptions));
        if (Verbose) Err.WriteLine(e.ToString());
        return code;
    }
}
