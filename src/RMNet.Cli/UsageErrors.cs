using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace RMNet.Cli;

/// <summary>
/// Command-line parse errors as every other error: one line <c>rmnet: error: &lt;file or command&gt;: &lt;problem&gt;</c>
/// on stderr, and under <c>--json</c> the document <c>{"error": ..., "exit_code": 2}</c> on stdout.
/// </summary>
internal static partial class UsageErrors
{
    /// <summary>Writes the errors of <paramref name="parsed"/> and returns the usage exit code.</summary>
    public static int Report(ParseResult parsed, IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        string message = Describe(parsed);
        stderr.WriteLine($"rmnet: error: {message}");
        if (args.Contains("--json"))
            stdout.WriteLine(JsonSerializer.Serialize(new { error = message, exit_code = ExitCodes.BadInput }, CliContext.JsonOptions));
        return ExitCodes.BadInput;
    }

    /// <summary>
    /// The errors as one line: named after the command's file argument where one was given (else the command),
    /// each option's errors prefixed with the option, .NET type names replaced by what the value should be.
    /// </summary>
    public static string Describe(ParseResult parsed)
    {
        var command = parsed.CommandResult;
        string commandLine = command.Command is RootCommand ? "rmnet" : $"rmnet {command.Command.Name}";
        string? file = command.Children.OfType<ArgumentResult>().SelectMany(a => a.Tokens).Select(t => t.Value).FirstOrDefault();
        var problems = parsed.Errors.Select(e => Clean(e.Message, OptionOf(e.SymbolResult))).Distinct();
        return $"{file ?? commandLine}: {string.Join("; ", problems)} (see '{commandLine} --help')";
    }

    static string? OptionOf(SymbolResult? result) => result switch
    {
        OptionResult o => o.Option.Name,
        ArgumentResult { Parent: OptionResult o } => o.Option.Name,
        _ => null,
    };

    static string Clean(string message, string? option)
    {
        string text = Whitespace().Replace(message, " ").Trim().TrimEnd('.');
        text = TypeName().Replace(text, m => m.Groups[1].Value switch
        {
            "System.Int32" or "System.Int64" or "System.Nullable`1[System.Int32]" => "a whole number",
            "System.Double" => "a number",
            _ => "a valid value",
        });
        text = NotAmong().Replace(text, "'$1' is not one of").Replace("' '", "', '");
        return option is null || text.Contains(option, StringComparison.Ordinal) ? text : $"{option}: {text}";
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"Argument '([^']*)' not recognized\. Must be one of:")]
    private static partial Regex NotAmong();

    [GeneratedRegex(@"expected type '([^']+)'")]
    private static partial Regex TypeName();
}
