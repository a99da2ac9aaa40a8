using System.Text.Json;
using RMNet.Cli;
using Xunit;

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

    /// <summary>
    /// <c>rmnet convert input -o output --verify --input-size N --json --quiet</c> plus <paramref name="extra"/>:
    /// asserts success and a passed verification, returns the JSON report.
    /// </summary>
    public static JsonElement ConvertVerified(string input, string output, int inputSize, params string[] extra)
    {
        var (code, stdout, stderr) = Rmnet(new[] { "convert", input, "-o", output, "--verify", "--input-size", inputSize.ToString(), "--json", "--quiet" }.Concat(extra).ToArray());
        Assert.True(code == 0, stderr);
        var root = JsonDocument.Parse(stdout).RootElement;
        Assert.True(root.GetProperty("verification").GetProperty("passed").GetBoolean(), stdout);
        return root;
    }

    /// <summary><c>rmnet inspect input --json --quiet</c> (plus <paramref name="extra"/>): asserts success, returns the JSON report.</summary>
    public static JsonElement Inspect(string input, params string[] extra)
    {
        var (code, stdout, stderr) = Rmnet(new[] { "inspect", input, "--json", "--quiet" }.Concat(extra).ToArray());
        Assert.True(code == 0, stderr);
        return JsonDocument.Parse(stdout).RootElement;
    }
}
