using RMNet.Cli;

namespace RMNet.Tests;

/// <summary>Runs the rmnet command line in process and captures what it writes.</summary>
public static class CliHarness
{
    public static (int Code, string Out, string Err) Rmnet(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
