using System.CommandLine;
using RMNet.Cli.Commands;

namespace RMNet.Cli;

/// <summary>The rmnet command line: parses arguments, runs a command, returns its exit code.</summary>
internal static class CliApp
{
    /// <summary>Runs rmnet with <paramref name="args"/>, writing results to <paramref name="stdout"/> and errors to <paramref name="stderr"/>.</summary>
    /// <param name="args">Command-line arguments.</param>
    /// <param name="stdout">Results and JSON.</param>
    /// <param name="stderr">Errors and progress.</param>
    /// <param name="interactive">True where stderr is a terminal (progress bar); false writes plain log lines.</param>
    /// <param name="stop">Stops the command when requested (SIGINT/SIGTERM in the rmnet process); null: never stopped.</param>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, bool interactive = false, StopRequest? stop = null)
    {
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print stack traces of errors", Recursive = true };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No progress output (errors are still printed)", Recursive = true };
        var io = new CommandIO(stdout, stderr, verbose, quiet, interactive, stop ?? new StopRequest());
        var root = new RootCommand("rmnet: remove residual connections from trained ResNets, exactly (RM operation, Meng et al. 2021)")
        {
            verbose,
            quiet,
            ConvertCommand.Create(io),
            VerifyCommand.Create(io),
            InspectCommand.Create(io),
            DemoCommand.Create(io),
            BenchCommand.Create(io),
            TrainCommand.Create(io),
            PruneCommand.Create(io),
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
            return UsageErrors.Report(parsed, args, stdout, stderr);
        // ProcessTerminationTimeout null: signals are StopRequest's to handle (see there why).
        return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, ProcessTerminationTimeout = null });
    }
}

/// <summary>The writers and global options every command gets.</summary>
internal sealed record CommandIO(TextWriter Out, TextWriter Err, Option<bool> Verbose, Option<bool> Quiet, bool Interactive, StopRequest Stop)
{
    /// <summary>The context of one invocation.</summary>
    public CliContext Context(ParseResult p, Option<bool> json) =>
        new(Out, Err, p.GetValue(json), p.GetValue(Verbose), new ProgressDisplay(Err, Interactive, p.GetValue(Quiet)), Stop);
}
