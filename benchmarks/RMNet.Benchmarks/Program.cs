// BenchmarkDotNet suite for RMNet's conversion costs. Run:
//   dotnet run -c Release --project benchmarks/RMNet.Benchmarks -- --filter '*'
// Results and the machine they were measured on go in docs/benchmarks.md.
// A quick steady-state loop without BenchmarkDotNet's process isolation (12 conversions, sorted times):
//   dotnet run -c Release --project benchmarks/RMNet.Benchmarks -- --loop dense|grouped
using System.Diagnostics;
using BenchmarkDotNet.Running;
using RMNet.Models;
using RMNet.Rm;

if (args.Length == 2 && args[0] == "--loop")
{
    var mode = Enum.Parse<RmMode>(args[1], ignoreCase: true);
    using var ckpt = ResNetCheckpoint.FromStateDict(RandomResNet.Create(ResNetSpec.Named("resnet50"), 1));
    var times = new List<double>();
    for (int i = 0; i < 12; i++)
    {
        var clock = Stopwatch.StartNew();
        var plain = ckpt.ToPlain(mode);
        times.Add(clock.Elapsed.TotalMilliseconds);
        foreach (var c in plain.Convs) { c.Weight.Dispose(); c.Bias.Dispose(); }
    }
    Console.WriteLine($"ResNet-50 {mode}: {string.Join(" ", times.Select(t => t.ToString("F0")))} ms; median {times.Order().ElementAt(times.Count / 2):F0} ms");
    return;
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
