using System.CommandLine;
using RMNet.Cli;
using RMNet.Cli.Commands;

var verbose = new Option<bool>("--verbose", "-v") { Description = "Print stack traces of errors", Recursive = true };
var root = new RootCommand("rmnet: remove residual connections from trained ResNets, exactly (RM operation, Meng et al. 2021)")
{
    verbose,
    ConvertCommand.Create(verbose),
    VerifyCommand.Create(verbose),
    InspectCommand.Create(verbose),
    DemoCommand.Create(verbose),
};

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors)
        Console.Error.WriteLine($"rmnet: error: {error.Message}");
    Console.Error.WriteLine("Run 'rmnet --help' or 'rmnet <command> --help' for usage.");
    return ExitCodes.BadInput;
}
return parsed.Invoke();
