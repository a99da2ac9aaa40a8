using System.CommandLine;
using RMNet.Benchmarking;
using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Rm;
using RMNet.Verification;
using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Cli.Commands;

/// <summary><c>rmnet bench</c>: original against converted, one run, alternating, after warm-up.</summary>
internal static class BenchCommand
{
    /// <summary>The relative error above which the plain network is reported as not the original's function (float32 noise is far below).</summary>
    const double BenchTolerance = 1e-4;

    public sealed record Result(string Model, string? Versus, string Runtime, string RmMode, int Batch, int Size, int Threads, int Runs, int Warmup,
        LatencyStats Original, LatencyStats Converted, double LatencyRatio, double ThroughputRatio, IReadOnlyList<long> InputShape, IReadOnlyList<string>? FixedByModel)
    {
        /// <summary>The plain network's largest relative error against the original on the benchmark's input (null with --versus).</summary>
        public double? PlainMaxRelError { get; init; }

        /// <summary>False where the plain network does not compute the original's function at this input size (null with --versus).</summary>
        public bool? PlainEquivalent { get; init; }
    }

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
        var weightsKey = CommonOptions.WeightsKey();
        var bnEps = CommonOptions.BnEps();
        var json = CommonOptions.Json();
        var cmd = new Command("bench", "Measure original and converted latency and throughput in one run (median, p90, ratio)")
        {
            model, versus, batch, size, runs, warmup, runtime, threads, rmMode, weightsKey, bnEps, json,
        };
        cmd.SetAction(p =>
        {
            var ctx = io.Context(p, json);
            return ctx.Run(() => Run(ctx, p.GetValue(model)!, p.GetValue(versus), p.GetValue(runtime)!, p.GetValue(rmMode), p.GetValue(batch), p.GetValue(size),
                p.GetValue(runs), p.GetValue(warmup), p.GetValue(threads), p.GetValue(weightsKey), p.GetValue(bnEps)));
        });
        return cmd;
    }

    static int Run(CliContext ctx, string path, string? versus, string runtime, RmMode mode, int batch, int size, int runs, int warmup, int threads,
        string? weightsKey = null, double? bnEps = null)
    {
        // A checkpoint: a family recognised by its names alone (with --bn-eps, which the other families refuse there), or one
        // with a loader of its own (read once either way).
        Checkpoint Load(string file)
        {
            var sd = CheckpointLoading.Read(ctx, file, weightsKey);
            if (RMNet.RepBlocks.RepBlockFinder.Matches(sd))
            {
                sd.Dispose();
                throw new ModelInputException(file, "a detector's checkpoint: rmnet converts only its re-parameterisable blocks and cannot run the detector to measure it");
            }
            return CheckpointLoading.Lowered(ctx, sd, bnEps) is { } lowered ? new Checkpoint(null, lowered) : new Checkpoint(CheckpointLoading.FromStateDict(ctx, sd), null);
        }
        if (weightsKey is not null && FileFormats.Detect(path) == FileFormat.Onnx)
            throw new ModelInputException(path, "--weights-key applies to checkpoints; an ONNX model has one set of weights");
        // Refused where the measurement reads no checkpoint; with --versus, a checkpoint on either side takes it.
        if (bnEps is not null && FileFormats.Detect(path) == FileFormat.Onnx && (versus is null || FileFormats.Detect(versus) == FileFormat.Onnx))
            throw new ModelInputException(path, CommonOptions.BnEpsOnOnnx);
        if (batch < 1 || size < 8 || runs < 1 || warmup < 0 || threads < 1)
            throw new ModelInputException(path, "--batch, --runs and --threads must be at least 1, --size at least 8, --warmup at least 0");
        ctx.RemoveStaleTemporaries(Path.GetTempPath());
        if (versus is not null && File.Exists(versus) && File.Exists(path))   // missing files are reported where they are opened
            MemoryEstimate.EnsureFits(versus, "benchmarking", MemoryEstimate.Bench(FileFormats.ModelBytes(versus), FileFormats.ModelBytes(path)));
        using var temp = new TempFolder("bench");
        var disposables = new List<IDisposable>();
        try
        {
            ctx.Progress.Stage($"preparing {path}{(versus is null ? "" : $" and {versus}")} ({runtime}, {threads} threads)");
            if (runtime == "torchsharp") set_num_threads(threads);
            var (original, originalOutput, fixedA) = Prepare(path, runtime, threads, mode, convert: false, temp, disposables, Load, ctx.Cancellation);
            var (converted, convertedOutput, fixedB) = Prepare(versus ?? path, runtime, threads, mode, convert: versus is null, temp, disposables, Load, ctx.Cancellation);
            var (shape, notes) = InputShape(fixedA, fixedB, batch, size, path, versus);
            ctx.Progress.Stage($"input {FormatShape(shape)}{(notes.Count > 0 ? ": " + string.Join("; ", notes) : "")}");
            var input = randn(shape, generator: new Generator(0));
            disposables.Add(input);
            (batch, size) = ((int)shape[0], (int)shape[2]);
            // A conversion exact only under a condition (ResNet-D's average-pooled shortcuts at even sizes) may not hold at
            // this size: the timing would be of another function, so the report says so.
            VerificationReport? check = null;
            if (versus is null)
            {
                // The whole batch: a model that fixes its batch takes no other.
                ctx.Progress.Stage("checking the plain network against the original on the benchmark's input");
                using var expected = originalOutput(input);
                using var actual = convertedOutput(input);
                check = Equivalence.Measure(expected, actual, BenchTolerance);
            }
            var r = LatencyBenchmark.Run(original(input), converted(input), batch, runs, warmup, ctx.Progress, ctx.Cancellation);
            string secondName = versus is null ? "plain" : "versus";
            ctx.Document(new Result(path, versus, runtime, mode.ToString().ToLowerInvariant(), batch, size, threads, runs, warmup,
                r.Original, r.Converted, r.LatencyRatio, r.ThroughputRatio, shape, notes.Count > 0 ? notes : null)
            {
                PlainMaxRelError = check?.MaxRelError, PlainEquivalent = check?.Passed,
            });
            ctx.Line($"{path}{(versus is null ? "" : $" versus {versus}")}: {runtime}, {threads} threads, batch {batch}, {shape[2]}x{shape[3]}, {runs} runs after {warmup} warm-up"
                + (versus is null ? $", {mode.ToString().ToLowerInvariant()} RM" : ""));
            if (notes.Count > 0) ctx.Line($"  input {FormatShape(shape)}: {string.Join("; ", notes)}");
            if (check is { Passed: false })
                ctx.Line($"  NOT EXACT at {shape[2]}x{shape[3]}: the plain network differs from the original by {Format.Sci(check.MaxRelError)} relative on the benchmark's input " +
                    $"(tolerance {Format.Sci(BenchTolerance)}); a conversion exact only under its blocks' conditions (rmnet convert's report) is timed here as another function");
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
    /// The input [N, C, H, W] both models take: the options' batch and size, 3 channels, except where a model fixes a
    /// dimension (an ONNX input shape, IResNet's head, a model's channels), which wins and is said in
    /// <c>Notes</c>. Models that fix one dimension differently cannot share an input (exit 2).
    /// </summary>
    static (long[] Shape, List<string> Notes) InputShape(long[] a, long[] b, int batch, int size, string path, string? versus)
    {
        var shape = new long[] { batch, 3, size, size };
        string[] names = { "batch", "channels", "height", "width" };
        for (int i = 0; i < 4; i++)
        {
            long fa = a[i], fb = b[i];
            if (fa > 0 && fb > 0 && fa != fb)
                throw new ModelInputException(path, $"fixes the input's {names[i]} at {fa}, {versus} at {fb}: they cannot run on one input");
            if (Math.Max(fa, fb) > 0) shape[i] = Math.Max(fa, fb);
        }
        var notes = new List<string>();
        if (shape[0] != batch) notes.Add($"batch {shape[0]} fixed by the model (not --batch {batch})");
        if (shape[2] != size || shape[3] != size) notes.Add($"{shape[2]}x{shape[3]} fixed by the model (not --size {size})");
        return (shape, notes);
    }

    static string FormatShape(long[] shape) => $"[{string.Join(", ", shape)}]";

    /// <summary>
    /// A runner for one model file in the chosen runtime, prepared for a fixed input (the timed call does nothing
    /// else), and the input dimensions the model fixes [N, C, H, W] (-1 where free). <paramref name="convert"/> runs the file's RM conversion instead.
    /// Checkpoints run as TorchSharp modules or as ONNX exports of their residual network; rmnet plain models
    /// (.safetensors, .pth) as TorchSharp modules or ONNX exports; ONNX models in ONNX Runtime only.
    /// </summary>
    static (Func<Tensor, Action> Prepare, Func<Tensor, Tensor> Output, long[] Fixed) Prepare(string path, string runtime, int threads, RmMode mode, bool convert,
        TempFolder temp, List<IDisposable> disposables, Func<string, Checkpoint> load, CancellationToken cancellationToken)
    {
        var format = FileFormats.Detect(path);
        bool plainFile = PlainModelFile.IsPlain(path);
        if (runtime == "torchsharp")
        {
            if (format == FileFormat.Onnx) throw new ModelInputException(path, "an ONNX model is benchmarked with --runtime onnxruntime");
            nn.Module<Tensor, Tensor> module;
            long channels;
            int? fixedSize;
            if (plainFile)
            {
                var plain = PlainModelFile.Load(path);
                (module, channels, fixedSize) = (plain.ToModule(), plain.InputChannels, plain.FixedInputSize);
            }
            else
            {
                using var checkpoint = load(path);
                var ckpt = checkpoint.Model ?? throw new ModelInputException(path, $"{checkpoint.Lowered!.Description} is lowered into the graph and benchmarked with --runtime onnxruntime");
                module = convert ? Fitting(ckpt.ToPlain(mode, cancellationToken: cancellationToken), path, ckpt, mode).ToModule() : ckpt.CreateModule();
                (channels, fixedSize) = (ckpt.InputChannels, ckpt.FixedInputSize);   // IResNet's flatten head takes one size
            }
            disposables.Add(module);
            return (x => () => { using var _ = inference_mode(); module.forward(x).Dispose(); }, x => { using var _ = inference_mode(); return module.forward(x); },
                new long[] { -1, channels, fixedSize ?? -1, fixedSize ?? -1 });
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
            using var checkpoint = load(path);
            onnx = temp.File($"model{disposables.Count}.onnx");
            if (checkpoint.Lowered is { } lowered)
            {
                // The original is the lowered graph; the plain network is what the graph passes make of it.
                var graph = convert ? StopRequest.Abandonable(() => OnnxConversion.Convert(lowered.Lower(), path, mode).Model, cancellationToken) : lowered.Lower();
                OnnxModelFile.Save(graph, onnx, cancellationToken: cancellationToken);
                return Open(onnx, path, threads, disposables, cancellationToken);
            }
            var source = checkpoint.Model!;
            if (convert) OnnxExporter.Save(Fitting(source.ToPlain(mode, cancellationToken: cancellationToken), path, source, mode), onnx, cancellationToken: cancellationToken);
            else OnnxModelFile.Save(RMNet.Lowering.SourceGraphs.Lower(source), onnx, cancellationToken: cancellationToken);
        }
        return Open(onnx, path, threads, disposables, cancellationToken);
    }

    /// <summary>An ONNX Runtime session for <paramref name="onnx"/> (all optimisations, as deployed), and the input dimensions it fixes.</summary>
    static (Func<Tensor, Action> Prepare, Func<Tensor, Tensor> Output, long[] Fixed) Open(string onnx, string path, int threads, List<IDisposable> disposables, CancellationToken cancellationToken)
    {
        var runner = new OnnxRuntimeRunner(onnx, threads, cancellationToken, forLatency: true);
        disposables.Add(runner);
        var shape = runner.InputShape;
        if (shape.Length != 4) throw new ModelInputException(path, $"the model's input has {shape.Length} dimensions; bench measures image models [N, C, H, W]");
        return (x => runner.Prepare(x, cancellationToken), x => runner.Run(x, cancellationToken), shape.Select(d => (long)d).ToArray());
    }

    /// <summary>A checkpoint as bench reads it: a family with a loader of its own (<paramref name="Model"/>) or one recognised by its names alone (<paramref name="Lowered"/>).</summary>
    sealed record Checkpoint(ISourceModel? Model, RMNet.Lowering.LoweredCheckpoint? Lowered) : IDisposable
    {
        public void Dispose()
        {
            Model?.Dispose();
            Lowered?.Dispose();
        }
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
}
