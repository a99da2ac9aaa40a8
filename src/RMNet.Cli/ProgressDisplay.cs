namespace RMNet.Cli;

/// <summary>
/// Progress of long operations on stderr: a bar redrawn in place on a terminal, plain log lines (stage start
/// and end) when stderr is redirected, nothing under --quiet. stdout stays clean for results and JSON.
/// </summary>
internal sealed class ProgressDisplay(TextWriter stderr, bool interactive, bool quiet) : IProgress<ProgressStep>
{
    string? _stage;

    /// <summary>Announces a step without a count ("loading model.pth").</summary>
    public void Stage(string text)
    {
        if (quiet) return;
        EndBar();
        stderr.WriteLine($"rmnet: {text}");
    }

    /// <inheritdoc />
    public void Report(ProgressStep step)
    {
        if (quiet) return;
        if (interactive)
        {
            int width = 30, filled = step.Total == 0 ? width : step.Done * width / step.Total;
            stderr.Write($"\rrmnet: {step.Stage} [{new string('#', filled)}{new string('.', width - filled)}] {step.Done}/{step.Total}");
            _stage = step.Stage;
            if (step.Done == step.Total) EndBar();
        }
        else if (step.Done == step.Total)
        {
            stderr.WriteLine($"rmnet: {step.Stage}: {step.Total}/{step.Total} done");
        }
    }

    /// <summary>Ends a bar drawn in place, so that what is written next (a stop, an error) starts a line of its own.</summary>
    public void EndBar()
    {
        if (_stage is null) return;
        stderr.WriteLine();
        _stage = null;
    }
}
