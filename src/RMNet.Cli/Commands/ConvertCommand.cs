using System.CommandLine;
using System.Diagnostics;
using RMNet.IO;
using RMNet.Models;
using RMNet.Verification;

namespace RMNet.Cli.Commands;

/// <summary><c>rmnet convert</c>: checkpoint in, plain model out (format by extension), optionally verified before it lands.</summary>
internal static class ConvertCommand
{
    public sealed record Result(string Input, string Output, string Architecture, string RmMode, int Blocks, int ZeroChannels,
        CostReport Original, CostReport Converted, IReadOnlyList<StageRow> Stages, double ConvertSeconds, VerificationJson? Verification, string Dtype = "float32")
    {
        /// <summary>As <see cref="OnnxResult.Error"/>.</summary>
        public string? Error { get; init; }
        public int? ExitCode { get; init; }
    }

    public sealed record OnnxResult(string Input, string Output, int BlocksFound, int BlocksPlain, int FoldedBatchNorms, int MergedBranches,
        IReadOnlyList<RMNet.Onnx.GraphBlockReport> Blocks, CostReport Original, CostReport Converted, VerificationJson? Verification,
        int JoinsFound, int JoinsRemaining, int Gates, IReadOnlyList<RMNet.Onnx.JoinReport> Joins)
    {
        /// <summary>Why nothing was written (--strict, or verification failed), with <see cref="ExitCode"/>; null on success.</summary>
        public string? Error { get; init; }
        public int? ExitCode { get; init; }
        /// <summary>Joins made plain whose shortcut pool has partial windows at --input-size: not exact there; null where none.</summary>
        public IReadOnlyList<RMNet.Onnx.PartialShortcutPool>? PartialShortcutPools { get; init; }
    }

    /// <summary>
    /// A checkpoint lowered into the graph: every field of a checkpoint's document (<see cref="Result"/>, <c>blocks</c> the
    /// count of its blocks), then the graph's joins and what the passes did, the block list of an ONNX input's document
    /// under <c>graph_blocks</c>.
    /// </summary>
    public sealed record LoweredResult(string Input, string Output, string Architecture, string RmMode, int Blocks, int ZeroChannels,
        CostReport Original, CostReport Converted, IReadOnlyList<StageRow> Stages, double ConvertSeconds, VerificationJson? Verification, string Dtype,
        int JoinsFound, int JoinsRemaining, int Gates, IReadOnlyList<RMNet.Onnx.JoinReport> Joins,
        int BlocksFound, int BlocksPlain, int FoldedBatchNorms, int MergedBranches, IReadOnlyList<RMNet.Onnx.GraphBlockReport> GraphBlocks)
    {
        /// <summary>As <see cref="OnnxResult.Error"/>.</summary>
        public string? Error { get; init; }
        public int? ExitCode { get; init; }
        /// <summary>As <see cref="OnnxResult.PartialShortcutPools"/>.</summary>
        public IReadOnlyList<RMNet.Onnx.PartialShortcutPool>? PartialShortcutPools { get; init; }
    }

    public static Command Create(CommandIO io)
    {
        var input = new Argument<string>("model")
        {
            Description = "PyTorch checkpoint (.pth, .pt, .pth.tar), .safetensors, or an ONNX model (converted at the graph level); " +
                "a detector's checkpoint with YOLOv7 RepConv or YOLOv6 RepVGGBlock blocks has only those blocks fused (written as .pth or .safetensors)",
        };
        var output = CommonOptions.Output("Output file: .onnx, .safetensors or .pth");
        var arch = CommonOptions.Arch();
        var numClasses = CommonOptions.NumClasses();
        var verify = new Option<bool>("--verify") { Description = "Check the written model against the original before keeping it (exit 1 and no output if it differs)" };
        var tolerance = CommonOptions.Tolerance();
        var samples = CommonOptions.Samples();
        var size = CommonOptions.InputSize();
        var force = new Option<bool>("--force") { Description = "Overwrite an existing output file" };
        var allowNonFinite = CommonOptions.AllowNonFinite();
        var rmMode = CommonOptions.RmMode();
        var negative = CommonOptions.NegativeInput();
        var dtype = CommonOptions.Choice("--dtype", "Weights of the written model: float32, or float16 (half the file; --verify then holds it to --tolerance 1e-2 unless given)",
            ("float32", OutputDtype.Float32), ("float16", OutputDtype.Float16));
        var strict = new Option<bool>("--strict") { Description = "ONNX input: exit 1 (and write nothing) if any residual join (Add/Sum of paths that split from one value) remains" };
        var reluOnly = new Option<bool>("--relu-only")
        {
            Description = "Checkpoints: write per-channel clamps (ReLU6, MobileNetV2) as differences of ReLUs folded into the neighbouring convs, " +
                "so the output uses only Conv, Relu, pools, Reshape and Gemm (for runtimes without per-channel Max/Min)",
        };
        var weightsKey = CommonOptions.WeightsKey();
        var bnEps = CommonOptions.BnEps();
        var json = CommonOptions.Json();
        var cmd = new Command("convert", "Remove the residual connections of a ResNet checkpoint and save the equivalent plain network")
        {
            input, output, arch, numClasses, rmMode, negative, reluOnly, dtype, verify, tolerance, samples, size, force, allowNonFinite, strict, weightsKey, bnEps, json,
        };
        cmd.SetAction(p =>
        {
            var ctx = io.Context(p, json);
            var weights = p.GetValue(dtype);
            // A float16 model is held to float16's own tolerance unless one is given.
            double bound = p.GetResult(tolerance) is { Implicit: false } ? p.GetValue(tolerance) : weights.DefaultTolerance();
            var options = new VerifyOptions(p.GetValue(samples), p.GetValue(size), bound);
            return ctx.Run(() => FileFormats.Detect(p.GetValue(input)!) == FileFormat.Onnx
                ? weights != OutputDtype.Float32
                    ? throw new ModelInputException(p.GetValue(input)!, "--dtype float16 applies to checkpoints; an ONNX model keeps its own weight types")
                    : p.GetValue(reluOnly)
                        ? throw new ModelInputException(p.GetValue(input)!, "--relu-only applies to checkpoints; ONNX input keeps its clamps as Max/Min (convert the checkpoint instead)")
                    : p.GetValue(weightsKey) is not null
                        ? throw new ModelInputException(p.GetValue(input)!, "--weights-key applies to checkpoints; an ONNX model has one set of weights")
                        : p.GetValue(bnEps) is not null
                            ? throw new ModelInputException(p.GetValue(input)!, CommonOptions.BnEpsOnOnnx)
                        : RunOnnx(ctx, p.GetValue(input)!, p.GetValue(output)!, p.GetValue(rmMode), p.GetValue(verify), options, p.GetValue(force), p.GetValue(strict), p.GetValue(negative))
                : Run(ctx, p.GetValue(input)!, p.GetValue(output)!, p.GetValue(arch)!, p.GetValue(numClasses), p.GetValue(rmMode),
                    p.GetValue(verify), options, p.GetValue(force), p.GetValue(allowNonFinite), p.GetValue(negative), weights, p.GetValue(reluOnly), p.GetValue(weightsKey), p.GetValue(strict), p.GetValue(bnEps),
                    p.GetResult(tolerance) is { Implicit: false } ? p.GetValue(tolerance) : null));
        });
        return cmd;
    }

    public static int Run(CliContext ctx, string input, string output, string arch, int? numClasses, RMNet.Rm.RmMode mode, bool verify,
        VerifyOptions options, bool force, bool allowNonFinite, RMNet.Rm.NegativeInputMode negative = RMNet.Rm.NegativeInputMode.PRelu,
        OutputDtype dtype = OutputDtype.Float32, bool reluOnly = false, string? weightsKey = null, bool strict = false, double? bnEps = null,
        double? givenTolerance = null)
    {
        ModelWriter.CheckExtension(output);   // before anything is loaded, naming the path given (not the temporary one)
        using var pending = new PendingOutput(output, force, input);
        ctx.RemoveStaleTemporaries(output);
        MemoryEstimate.EnsureFits(input, $"loading and converting {input}", MemoryEstimate.Load(FileFormats.ModelBytes(input)));
        ctx.Progress.Stage($"loading {input}");
        var sd = CheckpointLoading.Read(ctx, input, weightsKey);
        if (RMNet.RepBlocks.RepBlockFinder.Matches(sd))
        {
            using (sd)
            {
                if (dtype != OutputDtype.Float32 || reluOnly || arch != "auto" || numClasses is not null || strict)
                    throw new ModelInputException(input, "a detector's blocks: --dtype, --relu-only, --arch, --num-classes and --strict do not apply (each tensor keeps its dtype; only the blocks are rewritten)");
                // Refused before any fusing (the trial saw the blocks fused and "writing" printed first).
                if (FileFormats.FromExtension(output) == FileFormat.Onnx)
                    throw new ModelInputException(output, RMNet.RepBlocks.RepBlockConversion.OnnxRefusal);
                return DetectorBlocks.Convert(ctx, input, output, pending, sd, bnEps, verify, givenTolerance, allowNonFinite);
            }
        }
        if (CheckpointLoading.Lowered(ctx, sd, bnEps, allowNonFinite) is { } lowered)
        {
            using (lowered)
            {
                if (dtype != OutputDtype.Float32 || reluOnly || arch != "auto" || numClasses is not null)
                    throw new ModelInputException(input, $"{lowered.Description}: --dtype, --relu-only, --arch and --num-classes do not apply (its layout and weights are read from the names)");
                return RunGraph(ctx, input, output, pending, mode, verify, options, strict, lowered);
            }
        }
        using var ckpt = CheckpointLoading.FromStateDict(ctx, sd, arch, numClasses, allowNonFinite, negative);
        var clock = Stopwatch.StartNew();
        var plain = ckpt.ToPlain(mode, ctx.Progress, ctx.Cancellation);
        if (reluOnly) plain = RMNet.Plain.ClampAsRelu.Rewrite(plain);
        double convertSeconds = clock.Elapsed.TotalSeconds;
        // The transform leaves its zeros untouched (no memory yet); writing and verifying fill them in.
        MemoryEstimate.EnsureFits(input, $"writing {output}{(verify ? " and verifying it" : "")}",
            MemoryEstimate.Convert(plain.ParameterCount * sizeof(float), FileFormats.ModelBytes(input), verify,
                externalData: FileFormats.FromExtension(output) == FileFormat.Onnx && plain.ParameterCount * sizeof(float) > RMNet.Onnx.OnnxModelFile.ExternalDataThreshold),
            SmallerForm(ckpt, mode, negative));
        ctx.Progress.Stage($"writing {output}");
        ModelWriter.Save(plain, pending.TempPath, $"rmnet: residual connections removed (RM, {mode.ToString().ToLowerInvariant()} form) from {ckpt.DisplayName}, {Path.GetFileName(input)}"
            + (dtype == OutputDtype.Float16 ? "; float16 weights" : ""), dtype, ctx.Cancellation);

        long bytes = FileFormats.ModelBytes(pending.TempPath);
        var stages = StageRow.Compare(ckpt.CostByStage(options.InputSize, options.InputSize), plain.CostByStage(options.InputSize, options.InputSize));
        var converted = CostReport.Of(plain, options.InputSize, bytes);
        int zeroChannels = plain.ZeroChannels;
        // Written, the weights are not needed again. Freed before verification loads the file (with the writer's managed
        // copies, and what the C heap keeps), they add neither to its peak nor to the exit of a stopped run: a dense
        // ResNet-152's convert goes into verification with 0.4 GB resident instead of 4.6 GB.
        plain.Dispose();
        // The aggressive collection hands the writer's managed copies of the weights back to the system (a plain
        // collection keeps the memory committed); the trim does the same for the C heap.
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        RMNet.NativeHeap.Trim();

        VerificationReport? report = null;
        if (verify)
        {
            int side = ckpt.FixedInputSize ?? options.InputSize;   // IResNet's head fixes it
            ctx.Progress.Stage($"verifying {output} on {options.Samples} images of {side}x{side}");
            using var runner = ModelRunner.OpenConverted(pending.TempPath, ckpt, ctx.Cancellation);
            report = Verifier.Verify(ckpt, runner, options, ctx.Cancellation);
        }
        var result = new Result(input, output, ckpt.DisplayName, mode.ToString().ToLowerInvariant(), ckpt.BlockCount, zeroChannels,
            CostReport.Of(ckpt, options.InputSize, FileFormats.ModelBytes(input)), converted,
            stages, convertSeconds, report is null ? null : VerificationJson.Of(report), dtype.ToString().ToLowerInvariant());

        if (report is { Passed: false })
        {
            string refusal = ReportText.NotKept(output, report);
            ctx.Document(result with { Error = refusal, ExitCode = ExitCodes.NotEquivalent });
            ctx.Line(ReportText.Verification(report));
            return Finish(ctx, pending, output, refusal);
        }
        pending.Commit();
        ctx.Document(result);
        ctx.Line($"converted {input}: {ckpt.Description}{(ckpt.Family == "resnet" ? $", {result.RmMode} RM" : "")}{(dtype == OutputDtype.Float16 ? ", float16 weights" : "")}");
        foreach (var line in ReportText.CostTable(result.Original, result.Converted)) ctx.Line(line);
        foreach (var line in ReportText.StageTable(stages, result.Original.InputSize)) ctx.Line(line);
        if (zeroChannels > 0) ctx.Line($"  grouped RM padded the reserved channels with {zeroChannels} zero channels in all, so they fill whole groups");
        if (report is not null) ctx.Line(ReportText.Verification(report));
        ctx.Line($"wrote {output} ({Format.Bytes(bytes)}); RM transform took {convertSeconds:F2} s");
        return ExitCodes.Success;
    }

    /// <summary>The advice for a model too large for the machine: a smaller exact form where the options chose a larger one.</summary>
    internal static string? SmallerForm(ISourceModel model, RMNet.Rm.RmMode mode, RMNet.Rm.NegativeInputMode negative) =>
        negative == RMNet.Rm.NegativeInputMode.Split && model.Family is "preact-resnet" or "iresnet" ? "--negative-input prelu carries negative inputs in half the channels"
        : mode == RMNet.Rm.RmMode.Dense && model.Family == "resnet" ? "the default --rm-mode grouped is smaller" : null;

    /// <summary>ONNX in, ONNX out: graph-level RM, blocks reported one by one.</summary>
    public static int RunOnnx(CliContext ctx, string input, string output, RMNet.Rm.RmMode mode, bool verify, VerifyOptions options, bool force, bool strict,
        RMNet.Rm.NegativeInputMode negative = RMNet.Rm.NegativeInputMode.PRelu)
    {
        ModelWriter.CheckExtension(output);
        using var pending = new PendingOutput(output, force, input);
        ctx.RemoveStaleTemporaries(output);
        ctx.Progress.Stage($"loading {input}");
        return RunGraph(ctx, input, output, pending, mode, verify, options, strict, lowered: null, negative);
    }

    /// <summary>
    /// The graph engine's conversion of <paramref name="input"/> into <paramref name="pending"/>: an ONNX file, or a
    /// checkpoint <paramref name="lowered"/> into the graph (verified against that graph, written to a temporary file).
    /// </summary>
    static int RunGraph(CliContext ctx, string input, string output, PendingOutput pending, RMNet.Rm.RmMode mode, bool verify, VerifyOptions options, bool strict,
        RMNet.Lowering.LoweredCheckpoint? lowered, RMNet.Rm.NegativeInputMode negative = RMNet.Rm.NegativeInputMode.PRelu)
    {
        using var scratch = lowered is null || !verify ? null : new TempFolder("lowered");
        string original = scratch?.File("original.onnx") ?? input;
        string? description = lowered?.Description;
        IReadOnlyList<StageRow>? stages = null;
        var clock = new Stopwatch();
        // The graph passes have no safe points; they only read the file and build a new model, so a stop abandons them.
        var result = StopRequest.Abandonable(() =>
        {
            if (lowered is null) return RMNet.Onnx.OnnxConversion.Convert(input, mode, options.InputSize, negative);
            // A checkpoint's convert_seconds is its transform's time: here lowering and the passes, not the costing.
            clock.Start();
            var model = lowered.Lower();
            clock.Stop();
            var prefixes = lowered.Layout.StagePrefixes;
            var before = RMNet.Onnx.GraphStageCost.Of(model, input, options.InputSize, prefixes);
            clock.Start();
            var converted = RMNet.Onnx.OnnxConversion.ConvertLowered(model, input, mode, options.InputSize, scratch is null ? null : original, negative);
            clock.Stop();
            stages = StageRow.Compare(before, RMNet.Onnx.GraphStageCost.Of(converted.Model, input, options.InputSize, prefixes));
            return converted;
        }, ctx.Cancellation);
        int plain = result.Blocks.Count(b => b.Plain);
        var joins = result.Joins;
        // Where the graph leaves H and W dynamic, a ResNet-D's pooled shortcut is made plain under a condition on the size,
        // which the input's summary (taken before the passes) checks at --input-size. A join kept is reported as kept; one
        // made plain that is not exact at this size, as not exact.
        var notExact = result.Input!.PartialPools.Where(p => joins.Any(j => j.Name == p.Join && !j.Remains)).ToDictionary(p => p.Join);
        // --strict is decided on the converted graph in memory: a refused model is never written, not even as a temporary.
        string? refusal = !strict ? null
            : result.JoinsRemaining > 0 || plain < result.Blocks.Count
                ? $"{input}: {result.JoinsRemaining} residual join(s) remain in the output ({string.Join(", ", joins.Where(j => j.Remains).Select(j => j.Name).Take(5))}" +
                  $"{(result.JoinsRemaining > 5 ? ", ..." : "")}) (--strict); nothing written"
            : notExact.Count > 0
                ? $"{input}: at {options.InputSize}x{options.InputSize} {notExact.Count} block(s) cannot be exact ({string.Join("; ", notExact.Values.Take(3).Select(p => $"{p.Join}: {NotExact(p)}"))}" +
                  $"{(notExact.Count > 3 ? "; ..." : "")}) (--strict); nothing written"
            : null;
        VerificationReport? report = null;
        if (refusal is null)
        {
            // The output's size is known only once the passes ran; what writing and verifying add is checked before they start.
            long outputBytes = result.Model.Graph.Initializer.Sum(t => (long)t.RawData.Length);
            long sourceBytes = FileFormats.ModelBytes(input);
            MemoryEstimate.EnsureFits(input, $"writing {output}{(verify ? " and verifying it" : "")}",
                MemoryEstimate.Convert(outputBytes, sourceBytes, verify, externalData: outputBytes > RMNet.Onnx.OnnxModelFile.ExternalDataThreshold) - outputBytes - sourceBytes);
            ctx.Progress.Stage($"writing {output}");
            // A checkpoint lowered into the graph may also be written as a plain .safetensors or .pth: the plain graph read
            // back into a plain model (a graph that is not a plain chain is refused, naming where), then run in TorchSharp.
            bool onnxOut = FileFormats.FromExtension(output) == FileFormat.Onnx;
            RMNet.Onnx.GraphOutput.Write(result.Model, pending.TempPath, input,
                $"rmnet: residual connections removed (RM, {mode.ToString().ToLowerInvariant()} form) from {description ?? "an ONNX graph"}, {Path.GetFileName(input)}", ctx.Cancellation);
            if (verify)
            {
                ctx.Progress.Stage($"verifying {output} {(onnxOut ? "in ONNX Runtime" : "in TorchSharp against the original in ONNX Runtime")} on {options.Samples} inputs");
                report = RMNet.Onnx.GraphOutput.Verify(original, pending.TempPath, options, ctx.Cancellation);
                if (!report.Passed)
                    refusal = ReportText.NotKept(output, report);
            }
        }
        var (before, after) = (result.Input!, result.Output!);
        int gates = joins.Count(j => j.Kind == "gate");
        var (originalCost, convertedCost) = (CostReport.Of(before, FileFormats.ModelBytes(input)), CostReport.Of(after, refusal is null ? FileFormats.ModelBytes(pending.TempPath) : null));
        var verification = report is null ? null : VerificationJson.Of(report);
        int? exitCode = refusal is null ? null : ExitCodes.NotEquivalent;
        ctx.Document(lowered is null
            ? new OnnxResult(input, output, result.Blocks.Count, plain, result.FoldedBatchNorms, result.MergedBranches, result.Blocks,
                originalCost, convertedCost, verification, result.JoinsFound, result.JoinsRemaining, gates, joins)
            { Error = refusal, ExitCode = exitCode, PartialShortcutPools = notExact.Count > 0 ? notExact.Values.ToList() : null }
            : new LoweredResult(input, output, lowered.Description, mode.ToString().ToLowerInvariant(), lowered.Layout.Blocks,
                result.Blocks.Sum(b => b.ZeroChannels), originalCost, convertedCost, stages!, clock.Elapsed.TotalSeconds, verification, "float32",
                result.JoinsFound, result.JoinsRemaining, gates, joins, result.Blocks.Count, plain, result.FoldedBatchNorms, result.MergedBranches, result.Blocks)
            { Error = refusal, ExitCode = exitCode, PartialShortcutPools = notExact.Count > 0 ? notExact.Values.ToList() : null });
        ctx.Line($"converted {input}{(description is null ? "" : $" ({description}, lowered into the graph)")}: {result.JoinsFound - result.JoinsRemaining} of {result.JoinsFound} residual joins made plain" +
            // A graph of parallel branches only (RepVGG) has no residual blocks to count: its joins are the merged sums.
            (result.Blocks.Count > 0 || result.MergedBranches == 0 ? $" ({result.Blocks.Count} residual blocks recognised, {plain} made plain)" : "") + ", " +
            $"{gates} gates kept, {result.FoldedBatchNorms} BatchNormalization nodes folded, " +
            $"{result.MergedBranches} parallel-branch sums merged into one conv");
        var shortcuts = result.Blocks.GroupBy(b => b.Name).ToDictionary(b => b.Key, b => b.First());
        foreach (var j in joins.Where(j => j.Kind == "residual"))
            ctx.Line($"  {j.Name}: {(shortcuts.TryGetValue(j.Name, out var b) ? $"{b.Shortcut} shortcut, {b.Convs} convs" : j.Op)}: " +
                (j.Remains ? "kept: " + j.Reason : notExact.TryGetValue(j.Name, out var p) ? $"plain, NOT exact at {options.InputSize}x{options.InputSize}: {NotExact(p)}"
                    : b?.Condition is { } condition ? $"plain, {condition}" : "plain"));
        if (gates > 0) ctx.Line($"  gates (multiplications of one value's paths, kept by design): {string.Join(", ", joins.Where(j => j.Kind == "gate").Select(j => j.Name))}");
        foreach (var line in ReportText.CostTable(originalCost, convertedCost)) ctx.Line(line);
        if (stages is not null)
            foreach (var line in ReportText.StageTable(stages, originalCost.InputSize)) ctx.Line(line);
        if (report is not null) ctx.Line(ReportText.Verification(report));
        return Finish(ctx, pending, output, refusal);
    }

    /// <summary>E.g. "its shortcut's 2x2 average pool sees a 9x9 map, partial windows ...".</summary>
    static string NotExact(RMNet.Onnx.PartialShortcutPool p) =>
        $"its shortcut's {p.Window}x{p.Window} average pool sees a {p.Height}x{p.Width} map, partial windows that no conv kernel reproduces";

    /// <summary>
    /// The end of a conversion whose report is out: the output kept and named, or, where <paramref name="refusal"/> says
    /// why (--strict, or verification failed), that said on stderr, nothing written, exit 1.
    /// </summary>
    internal static int Finish(CliContext ctx, PendingOutput pending, string output, string? refusal)
    {
        if (refusal is not null)
        {
            ctx.Err.WriteLine($"rmnet: error: {refusal}");
            return ExitCodes.NotEquivalent;
        }
        pending.Commit();
        ctx.Line($"wrote {output} ({Format.Bytes(FileFormats.ModelBytes(output))})");
        return ExitCodes.Success;
    }
}
