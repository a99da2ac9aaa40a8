using RMNet.Cli;

using var stop = StopRequest.OnSignals();
int code = CliApp.Run(args, Console.Out, Console.Error, interactive: !Console.IsErrorRedirected, stop);
if (stop.ExitCode != ExitCodes.Success && code == stop.ExitCode) StopRequest.ExitNow(code);
return code;
