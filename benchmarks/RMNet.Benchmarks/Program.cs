// BenchmarkDotNet suite for RMNet's conversion costs. Run:
//   dotnet run -c Release --project benchmarks/RMNet.Benchmarks -- --filter '*'
// Results and the machine they were measured on go in docs/benchmarks.md.
using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
