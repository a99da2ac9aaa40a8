using System.CommandLine;
using RMNet.Benchmarking;
using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Rm;
using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Cli.Commands;

/// <summary><c>rmnet bench</c>: original against converted, one run, alternating, after warm-up.</summary>
public static class BenchCommand
{
    public sealed record Result(string Model, string Runtime, string RmMode, int Batch, int Size, int Threads, int Runs, int Warmup,
        LatencyStats Original, LatencyStats Converted, double LatencyRatio, double ThroughputRatio);

    public static Command Create(CommandIO io)
    {
        var model = new Argument<string>("model") { Description = "A checkpoint (.pth, .safetensors) or an ONNX model" };
        var batch = new Option<int>("--batch") { Description = "Images per run", DefaultValueFactory = _ => 8 };
        var size = new Option<int>("--size") { Description = "Input height and width", DefaultValueFactory = _ => 224 };
        var runs = new Option<int>("--runs") { Description = "Timed runs per model", DefaultValueFactory = _ => 20 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed runs per model first", DefaultValueFactory = _ => 3 };
        var runtime = new Option<string>("--runtime") { Description = "torchsharp or onnxruntime", DefaultValueFactory = _ => "onnxruntime" };
        runtime.AcceptOnlyFromAmong("torchsharp", "onnxruntime");
        var threads = new Option<int>("--threads") { Description = "Intra-op threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var rmMode = CommonOptions.RmMode();
        var json = CommonOptions.Json();
        var cmd = new Command("bench", "Measure original and converted latency and throughput in one run (median, p90, ratio)")
        {
            model, batch, size, runs, warmup, runtime, threads, rmMode, json,
        };
        cmd.SetAction(p =>
        {
            var ctx = io.Context(p, json);
            return ctx.Run(() => Run(ctx, p.GetValue(model)!, p.GetValue(runtime)!, p.GetValue(rmMode), p.GetValue(batch), p.GetValue(size),
                p.GetValue(runs), p.GetValue(warmup), p.GetValue(threads)));
        });
        return cmd;
    }

    static int Run(CliContext ctx, string path, string runtime, RmMode mode, int batch, int size, int runs, int warmup, int threads)
    {
        if (batch < 1 || size < 8 || runs < 1 || warmup < 0 || threads < 1)
            throw new ModelInputException(path, "--batch, --runs and --threads must be at least 1, --size at least 8, --warmup at least 0");
        Tensor Input(long channels) => randn(new long[] { batch, channels, size, size }, generator: new Generator(0));
        bool isOnnx = FileFormats.Detect(path) == FileFormat.Onnx;
        if (isOnnx && runtime == "torchsharp")
            throw new ModelInputException(path, "an ONNX model is benchmarked with --runtime onnxruntime");
        using var temp = new TempFolder();
        var disposables = new List<IDisposable>();
        try
        {
            Action original, converted;
            ctx.Progress.Stage($"preparing {path} ({runtime}, {threads} threads, batch {batch}, {size}x{size})");
            if (runtime == "torchsharp")
            {
                set_num_threads(threads);
                using var ckpt = SourceModels.Load(path);
                if (ckpt.FixedInputSize is int fixedSize && fixedSize != size)
                    throw new ModelInputException(path, $"{ckpt.DisplayName} takes {fixedSize}x{fixedSize} inputs only (its head flattens the feature map); pass --size {fixedSize}");
                var module = ckpt.CreateModule();
                var plain = ckpt.ToPlain(mode).ToModule();
                disposables.Add(module);
                disposables.Add(plain);
                var input = Input(ckpt.InputChannels);
                original = () => { using var _ = inference_mode(); module.forward(input).Dispose(); };
                converted = () => { using var _ = inference_mode(); plain.forward(input).Dispose(); };
            }
            else
            {
                string originalOnnx = path, convertedOnnx = temp.File("converted.onnx");
                if (isOnnx)
                    OnnxModelFile.Save(OnnxConversion.Convert(path, mode).Model, convertedOnnx);
                else
                {
                    using var source = SourceModels.Load(path);
                    if (source is not ResNetCheckpoint ckpt)
                        throw new ModelInputException(path, $"{source.DisplayName} is benchmarked with --runtime torchsharp (its original has no ONNX export yet)");
                    originalOnnx = temp.File("original.onnx");
                    ResNetOnnxExporter.Save(ckpt, originalOnnx);
                    OnnxExporter.Save(ckpt.ToPlain(mode), convertedOnnx);
                }
                var a = new OnnxRuntimeRunner(originalOnnx, threads);
                var b = new OnnxRuntimeRunner(convertedOnnx, threads);
                disposables.Add(a);
                disposables.Add(b);
                var input = Input(a.InputShape is { Length: 4 } s && s[1] > 0 ? s[1] : 3);
                original = a.Prepare(input);
                converted = b.Prepare(input);
            }
            var r = LatencyBenchmark.Run(original, converted, batch, runs, warmup, ctx.Progress);
            ctx.Document(new Result(path, runtime, mode.ToString().ToLowerInvariant(), batch, size, threads, runs, warmup,
                r.Original, r.Converted, r.LatencyRatio, r.ThroughputRatio));
            ctx.Line($"{path}: {runtime}, {threads} threads, batch {batch}, {size}x{size}, {runs} runs after {warmup} warm-up, {mode.ToString().ToLowerInvariant()} RM");
            var rows = new List<string[]>
            {
                new[] { "", "median ms", "p90 ms", "min ms", "images/s" },
                Row("original", r.Original),
                Row("plain", r.Converted),
            };
            foreach (var line in Format.Table(rows)) ctx.Line("  " + line);
            ctx.Line($"  latency ratio (plain / original) {Format.Ratio(r.LatencyRatio)}, throughput ratio {Format.Ratio(r.ThroughputRatio)}");
            return ExitCodes.Success;
        }
        finally
        {
            foreach (var d in disposables) d.Dispose();
        }
    }

    static string[] Row(string name, LatencyStats s) => new[]
    {
        name, s.MedianMs.ToString("F1"), s.P90Ms.ToString("F1"), s.MinMs.ToString("F1"), s.ImagesPerSecond.ToString("F1"),
    };

    /// <summary>A private temporary folder for the models a benchmark writes, removed afterwards.</summary>
    sealed class TempFolder : IDisposable
    {
        readonly string _path = Directory.CreateTempSubdirectory("rmnet-bench-").FullName;
        public string File(string name) => Path.Combine(_path, name);
        public void Dispose() { try { Directory.Delete(_path, true); } catch (IOException) { } }
    }
}
