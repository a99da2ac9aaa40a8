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
    public sealed record Result(string Model, string? Versus, string Runtime, string RmMode, int Batch, int Size, int Threads, int Runs, int Warmup,
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
        var versus = new Option<string?>("--versus") { Description = "Measure against this model (a checkpoint, rmnet plain .safetensors or .onnx) instead of the conversion" };
        var json = CommonOptions.Json();
        var cmd = new Command("bench", "Measure original and converted latency and throughput in one run (median, p90, ratio)")
        {
            model, versus, batch, size, runs, warmup, runtime, threads, rmMode, json,
        };
        cmd.SetAction(p =>
        {
            var ctx = io.Context(p, json);
            return ctx.Run(() => Run(ctx, p.GetValue(model)!, p.GetValue(versus), p.GetValue(runtime)!, p.GetValue(rmMode), p.GetValue(batch), p.GetValue(size),
                p.GetValue(runs), p.GetValue(warmup), p.GetValue(threads)));
        });
        return cmd;
    }

    static int Run(CliContext ctx, string path, string? versus, string runtime, RmMode mode, int batch, int size, int runs, int warmup, int threads)
    {
        if (batch < 1 || size < 8 || runs < 1 || warmup < 0 || threads < 1)
            throw new ModelInputException(path, "--batch, --runs and --threads must be at least 1, --size at least 8, --warmup at least 0");
        ctx.RemoveStaleTemporaries(Path.GetTempPath());
        if (versus is not null && File.Exists(versus) && File.Exists(path))   // missing files are reported where they are opened
            MemoryEstimate.EnsureFits(versus, "benchmarking", MemoryEstimate.Bench(FileFormats.ModelBytes(versus), FileFormats.ModelBytes(path)));
        using var temp = new TempFolder();
        var disposables = new List<IDisposable>();
        try
        {
            ctx.Progress.Stage($"preparing {path}{(versus is null ? "" : $" and {versus}")} ({runtime}, {threads} threads, batch {batch}, {size}x{size})");
            if (runtime == "torchsharp") set_num_threads(threads);
            var (original, channels) = Prepare(path, runtime, threads, size, mode, convert: false, temp, disposables, ctx.Cancellation);
            var (converted, _) = Prepare(versus ?? path, runtime, threads, size, mode, convert: versus is null, temp, disposables, ctx.Cancellation);
            var input = randn(new long[] { batch, channels, size, size }, generator: new Generator(0));
            disposables.Add(input);
            var r = LatencyBenchmark.Run(original(input), converted(input), batch, runs, warmup, ctx.Progress, ctx.Cancellation);
            string secondName = versus is null ? "plain" : "versus";
            ctx.Document(new Result(path, versus, runtime, mode.ToString().ToLowerInvariant(), batch, size, threads, runs, warmup,
                r.Original, r.Converted, r.LatencyRatio, r.ThroughputRatio));
            ctx.Line($"{path}{(versus is null ? "" : $" versus {versus}")}: {runtime}, {threads} threads, batch {batch}, {size}x{size}, {runs} runs after {warmup} warm-up"
                + (versus is null ? $", {mode.ToString().ToLowerInvariant()} RM" : ""));
            var rows = new List<string[]>
            {
                new[] { "", "median ms", "p90 ms", "min ms", "images/s" },
                Row(versus is null ? "original" : "model", r.Original),
                Row(secondName, r.Converted),
            };
            foreach (var line in Format.Table(rows)) ctx.Line("  " + line);
            ctx.Line($"  latency ratio ({secondName} / {(versus is null ? "original" : "model")}) {Format.Ratio(r.LatencyRatio)}, throughput ratio {Format.Ratio(r.ThroughputRatio)}");
            return ExitCodes.Success;
        }
        finally
        {
            foreach (var d in disposables) d.Dispose();
        }
    }

    /// <summary>
    /// A runner for one model file in the chosen runtime, prepared for a fixed input (the timed call does nothing
    /// else), and the image channels it takes. <paramref name="convert"/> runs the file's RM conversion instead.
    /// Checkpoints run as TorchSharp modules or as ONNX exports of their residual network; rmnet plain models
    /// (.safetensors) as TorchSharp modules or ONNX exports; ONNX models in ONNX Runtime only.
    /// </summary>
    static (Func<Tensor, Action> Prepare, long Channels) Prepare(string path, string runtime, int threads, int size, RmMode mode, bool convert,
        TempFolder temp, List<IDisposable> disposables, CancellationToken cancellationToken)
    {
        var format = FileFormats.Detect(path);
        bool plainFile = format == FileFormat.Safetensors && PlainModelFile.IsPlainSafetensors(path);
        if (runtime == "torchsharp")
        {
            if (format == FileFormat.Onnx) throw new ModelInputException(path, "an ONNX model is benchmarked with --runtime onnxruntime");
            nn.Module<Tensor, Tensor> module;
            long channels;
            if (plainFile)
            {
                var plain = PlainModelFile.Load(path);
                (module, channels) = (plain.ToModule(), plain.InputChannels);
            }
            else
            {
                using var ckpt = StopRequest.Abandonable(() => SourceModels.Load(path), cancellationToken);
                if (ckpt.FixedInputSize is int fixedSize && fixedSize != size)
                    throw new ModelInputException(path, $"{ckpt.DisplayName} takes {fixedSize}x{fixedSize} inputs only (its head flattens the feature map); pass --size {fixedSize}");
                module = convert ? Fitting(ckpt.ToPlain(mode, cancellationToken: cancellationToken), path, ckpt, mode).ToModule() : ckpt.CreateModule();
                channels = ckpt.InputChannels;
            }
            disposables.Add(module);
            return (x => () => { using var _ = inference_mode(); module.forward(x).Dispose(); }, channels);
        }
        string onnx = path;
        if (format == FileFormat.Onnx)
        {
            if (convert)
            {
                onnx = temp.File($"converted{disposables.Count}.onnx");
                var conversion = StopRequest.Abandonable(() => OnnxConversion.Convert(path, mode), cancellationToken);
                OnnxModelFile.Save(conversion.Model, onnx, cancellationToken: cancellationToken);
            }
        }
        else if (plainFile)
        {
            onnx = temp.File($"plain{disposables.Count}.onnx");
            OnnxExporter.Save(PlainModelFile.Load(path), onnx, cancellationToken: cancellationToken);
        }
        else
        {
            using var source = StopRequest.Abandonable(() => SourceModels.Load(path), cancellationToken);
            onnx = temp.File($"model{disposables.Count}.onnx");
            if (convert) OnnxExporter.Save(Fitting(source.ToPlain(mode, cancellationToken: cancellationToken), path, source, mode), onnx, cancellationToken: cancellationToken);
            else if (source is ResNetCheckpoint ckpt) ResNetOnnxExporter.Save(ckpt, onnx);
            else throw new ModelInputException(path, $"{source.DisplayName} is benchmarked with --runtime torchsharp (its original has no ONNX export yet)");
        }
        var runner = new OnnxRuntimeRunner(onnx, threads, cancellationToken);
        disposables.Add(runner);
        var shape = runner.InputShape;
        return (x => runner.Prepare(x, cancellationToken), shape is { Length: 4 } && shape[1] > 0 ? shape[1] : 3);
    }

    /// <summary><paramref name="plain"/>, once its size says the benchmark fits in memory (refused otherwise).</summary>
    static RMNet.Plain.PlainModel Fitting(RMNet.Plain.PlainModel plain, string path, ISourceModel source, RmMode mode)
    {
        MemoryEstimate.EnsureFits(path, "benchmarking", MemoryEstimate.Bench(plain.ParameterCount * sizeof(float), FileFormats.ModelBytes(path)),
            ConvertCommand.SmallerForm(source, mode, NegativeInputMode.PRelu));
        return plain;
    }

    static string[] Row(string name, LatencyStats s) => new[]
    {
        name, s.MedianMs.ToString("F1"), s.P90Ms.ToString("F1"), s.MinMs.ToString("F1"), s.ImagesPerSecond.ToString("F1"),
    };

    /// <summary>A private temporary folder for the models a benchmark writes, removed afterwards (or by a later run, see <see cref="TemporaryNames"/>).</summary>
    sealed class TempFolder : IDisposable
    {
        readonly string _path = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), TemporaryNames.New("bench"))).FullName;
        public string File(string name) => Path.Combine(_path, name);
        public void Dispose() { try { Directory.Delete(_path, true); } catch (IOException) { } }
    }
}
