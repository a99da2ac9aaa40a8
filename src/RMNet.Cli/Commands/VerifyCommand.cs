using System.CommandLine;
using RMNet.IO;
using RMNet.Models;
using RMNet.Verification;
using static TorchSharp.torch;

namespace RMNet.Cli.Commands;

/// <summary><c>rmnet verify</c>: runs the original checkpoint and a converted file on the same inputs.</summary>
internal static class VerifyCommand
{
    /// <summary><see cref="ConvertedDtype"/>: the converted file's weight types (float16 ones set the default tolerance to 1e-2).</summary>
    public sealed record Result(string Original, string Converted, string Architecture, int InputSize, long Seed, VerificationJson Verification,
        string? ConvertedDtype = null)
    {
        /// <summary>Where verification failed at a size a ResNet-D's pooled shortcuts cannot be exact at: those joins (null otherwise).</summary>
        public IReadOnlyList<RMNet.Onnx.PartialShortcutPool>? PartialShortcutPools { get; init; }
    }

    public static Command Create(CommandIO io)
    {
        var original = new Argument<string>("original") { Description = "The original: a checkpoint (.pth, .pt, .pth.tar, .safetensors) or an ONNX model" };
        var converted = new Argument<string>("converted") { Description = "The converted model (.onnx, .safetensors or .pth written by rmnet)" };
        var arch = CommonOptions.Arch();
        var numClasses = CommonOptions.NumClasses();
        var samples = CommonOptions.Samples(minimum: 0);
        var size = CommonOptions.InputSize();
        var tolerance = CommonOptions.Tolerance();
        var seed = CommonOptions.Seed();
        var userInput = new Option<string?>("--input")
        {
            Description = "Also run this tensor [N, C, H, W], C the model's input channels (.pth or .safetensors: a tensor saved on its own, the entry named 'input', or the only one)",
        };
        var allowNonFinite = CommonOptions.AllowNonFinite();
        // Verify runs a converted file against the residual original, so how a conversion carries negative inputs does not
        // enter it; the option stays accepted (hidden) for scripts that pass convert's options to verify too.
        var negative = CommonOptions.NegativeInput();
        negative.Hidden = true;
        var weightsKey = CommonOptions.WeightsKey();
        var bnEps = CommonOptions.BnEps();
        var json = CommonOptions.Json();
        var cmd = new Command("verify", "Check that a converted model computes the same as the original checkpoint (exit 0 equal, 1 different, 2 bad input)")
        {
            original, converted, arch, numClasses, samples, size, tolerance, seed, userInput, allowNonFinite, negative, weightsKey, bnEps, json,
        };
        cmd.Validators.Add(result =>
        {
            if (CommonOptions.Given(result.GetResult(samples)) == 0 && result.GetResult(userInput) is null)
                result.AddError("--samples 0 needs --input (a tensor of your own images to verify on)");
        });
        cmd.SetAction(p =>
        {
            var ctx = io.Context(p, json);
            return ctx.Run(() =>
            {
                string orig = p.GetValue(original)!, conv = p.GetValue(converted)!;
                bool onnxOriginal = FileFormats.Detect(orig) == FileFormat.Onnx;
                // The original exists (Detect read it); a missing converted file is reported where it is opened. An ONNX original runs in ONNX Runtime too.
                if (File.Exists(conv))
                {
                    long convBytes = FileFormats.ModelBytes(conv), origBytes = FileFormats.ModelBytes(orig);
                    bool external = File.Exists(conv + ".data");   // where rmnet writes ONNX external data
                    MemoryEstimate.EnsureFits(conv, "verifying",
                        onnxOriginal ? MemoryEstimate.Verify(convBytes + origBytes, 0, external) : MemoryEstimate.Verify(convBytes, origBytes, external));
                }
                var dtypes = WeightDtypes.Of(conv);
                // A float16 file is held to float16's own tolerance unless one is given, as convert --verify held it.
                bool float16 = dtypes is ["float16"] && p.GetResult(tolerance) is not { Implicit: false };
                double bound = float16 ? OutputDtype.Float16.DefaultTolerance() : p.GetValue(tolerance);
                string? note = float16 ? $"tolerance {Format.Sci(bound)}: the float16 default, since {conv} holds float16 weights (--tolerance sets another)" : null;
                if (onnxOriginal && p.GetValue(weightsKey) is not null)
                    throw new ModelInputException(orig, "--weights-key applies to checkpoints; an ONNX model has one set of weights");
                if (onnxOriginal && p.GetValue(bnEps) is not null) throw new ModelInputException(orig, CommonOptions.BnEpsOnOnnx);
                StateDict? sd = null;
                if (!onnxOriginal)
                {
                    ctx.Progress.Stage($"loading {orig}");
                    sd = CheckpointLoading.Read(ctx, orig, p.GetValue(weightsKey));
                }
                if (sd is not null && RMNet.RepBlocks.RepBlockFinder.Matches(sd))
                    using (sd)
                    {
                        // A detector is checked block by block, not run: an image for the network has no place here, but
                        // --samples and --input-size, where given, set the blocks' seeded inputs.
                        if (p.GetValue(userInput) is not null)
                            throw new ModelInputException(orig, "--input runs images through a network; a detector's blocks are checked one by one on seeded inputs (--samples, --input-size)");
                        return DetectorBlocks.Verify(ctx, orig, conv, sd, p.GetValue(bnEps), p.GetResult(tolerance) is { Implicit: false } ? p.GetValue(tolerance) : null,
                            float16, p.GetValue(seed),
                            p.GetResult(samples) is { Implicit: false } ? p.GetValue(samples) : RMNet.RepBlocks.RepBlockVerification.DefaultSamples,
                            p.GetResult(size) is { Implicit: false } ? p.GetValue(size) : RMNet.RepBlocks.RepBlockVerification.DefaultSize);
                    }
                var lowered = sd is null ? null : CheckpointLoading.Lowered(ctx, sd, p.GetValue(bnEps), p.GetValue(allowNonFinite));
                if (onnxOriginal || lowered is not null)
                {
                    using var scratch = lowered is null ? null : new TempFolder("lowered");
                    string originalGraph = orig;
                    if (lowered is not null)
                        using (lowered)
                        {
                            // The checkpoint runs as the graph its family is lowered into, in ONNX Runtime.
                            originalGraph = scratch!.File("original.onnx");
                            RMNet.Onnx.OnnxModelFile.Save(lowered.Lower(), originalGraph);
                        }
                    var onnxOptions = new VerifyOptions(p.GetValue(samples), p.GetValue(size), bound, p.GetValue(seed),
                        p.GetValue(userInput) is string inputPath ? ReadInput(inputPath) : null, p.GetValue(userInput));
                    ctx.Progress.Stage($"verifying {conv} against {orig} in ONNX Runtime");
                    // A plain .safetensors or .pth (as convert writes for a lowered family or an ONNX input) runs in TorchSharp.
                    var onnxReport = RMNet.Onnx.GraphOutput.Verify(originalGraph, conv, onnxOptions, ctx.Cancellation);
                    int ran = (int)(onnxReport.InputShape?.LastOrDefault() ?? onnxOptions.InputSize);
                    // A ResNet-D's pooled shortcuts are exact only where every pooled map is even: where that is why, say so.
                    var partial = onnxReport.Passed ? Array.Empty<RMNet.Onnx.PartialShortcutPool>()
                        : RMNet.Onnx.PartialShortcutPools.Find(RMNet.Onnx.OnnxModelFile.LoadStructure(originalGraph), orig, ran);
                    ctx.Document(new Result(orig, conv, lowered?.Description ?? "onnx", ran, onnxOptions.Seed,
                        VerificationJson.Of(onnxReport), WeightDtypes.Describe(dtypes)) { PartialShortcutPools = partial.Count > 0 ? partial : null });
                    string? why = partial.Count == 0 ? null
                        : $"  not exact at {ran}x{ran} by design: {string.Join("; ", partial.Take(3).Select(q => $"{q.Join}'s shortcut pools a {q.Height}x{q.Width} map in {q.Window}x{q.Window} windows"))}" +
                          $"{(partial.Count > 3 ? "; ..." : "")} (partial windows no conv kernel reproduces; verify at a size where every pooled map is even)";
                    return Report(ctx, onnxReport, onnxOptions, $"{conv} against {orig} ({(lowered is null ? "" : lowered.Description + ", lowered into the graph; ")}" +
                        $"{(FileFormats.Detect(conv) == FileFormat.Onnx ? "both in ONNX Runtime" : "the original in ONNX Runtime, the plain model in TorchSharp")})",
                        p.GetValue(userInput), note, why);
                }
                using var ckpt = CheckpointLoading.FromStateDict(ctx, sd!, p.GetValue(arch)!, p.GetValue(numClasses), p.GetValue(allowNonFinite), p.GetValue(negative));
                Tensor? extra = p.GetValue(userInput) is string path ? ReadInput(path) : null;
                var options = new VerifyOptions(p.GetValue(samples), p.GetValue(size), bound, p.GetValue(seed), extra, p.GetValue(userInput));
                using var runner = ModelRunner.OpenConverted(conv, ckpt, ctx.Cancellation);
                // The size that runs: the original's fixed one, else a converted ONNX's, else the option's.
                int side = ckpt.FixedInputSize ?? (runner.DeclaredInput is [_, _, > 0 and var h, _] ? h : options.InputSize);
                ctx.Progress.Stage($"verifying {conv} on {(options.Samples > 0 ? $"{options.Samples} seeded images of {side}x{side}{(extra is null ? "" : " and ")}" : "")}"
                    + (extra is null ? "" : $"the {extra.shape[0]} of {p.GetValue(userInput)}"));
                var report = Verifier.Verify(ckpt, runner, options, ctx.Cancellation);
                ctx.Document(new Result(orig, conv, ckpt.DisplayName, side, options.Seed, VerificationJson.Of(report), WeightDtypes.Describe(dtypes)));
                return Report(ctx, report, options, $"{conv} against {orig} ({ckpt.Description})", p.GetValue(userInput), note);
            });
        });
        return cmd;
    }

    /// <summary>The text lines of a verification (the JSON document is written before) and its exit code.</summary>
    static int Report(CliContext ctx, VerificationReport report, VerifyOptions options, string title, string? userInput, string? note, string? why = null)
    {
        ctx.Line(title);
        ctx.Line(ReportText.Inputs(report, options.Samples, options.InputSize, userInput));
        if (note is not null) ctx.Line(note);
        ctx.Line(ReportText.Verification(report));
        if (why is not null) ctx.Line(why);
        if (ReportText.UserImages(report, userInput) is { } line) ctx.Line(line);
        return report.Passed ? ExitCodes.Success : ExitCodes.NotEquivalent;
    }

    static Tensor ReadInput(string path)
    {
        using var sd = CheckpointReader.ReadTensors(path, "input");
        var t = sd.TryGetValue("input", out var named) ? named
            : sd.Count == 1 ? sd.Values.First() : throw new ModelInputException(path, "holds several tensors and none is named 'input'");
        if (t.dim() != 4)
            throw new ModelInputException(path, $"input tensor has shape [{string.Join(", ", t.shape)}], expected [N, C, H, W]");
        return t.to_type(ScalarType.Float32, copy: true);   // its own tensor: the state dict is disposed
    }
}
