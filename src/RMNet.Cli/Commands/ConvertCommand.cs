using System.CommandLine;
using System.Diagnostics;
using RMNet.IO;
using RMNet.Models;
using RMNet.Verification;

namespace RMNet.Cli.Commands;

/// <summary><c>rmnet convert</c>: checkpoint in, plain model out (format by extension), optionally verified before it lands.</summary>
public static class ConvertCommand
{
    public sealed record Result(string Input, string Output, string Architecture, string RmMode, int Blocks, int ZeroChannels,
        CostReport Original, CostReport Converted, IReadOnlyList<StageRow> Stages, double ConvertSeconds, VerificationJson? Verification, string Dtype = "float32");

    public sealed record OnnxResult(string Input, string Output, int BlocksFound, int BlocksPlain, int FoldedBatchNorms, int MergedBranches,
        IReadOnlyList<RMNet.Onnx.GraphBlockReport> Blocks, CostReport Original, CostReport Converted, VerificationJson? Verification);

    public static Command Create(CommandIO io)
    {
        var input = new Argument<string>("model") { Description = "PyTorch checkpoint (.pth, .pt, .pth.tar), .safetensors, or an ONNX model (converted at the graph level)" };
        var output = new Option<string>("--output", "-o") { Description = "Output file: .onnx, .safetensors or .pth", Required = true };
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
        var strict = new Option<bool>("--strict") { Description = "ONNX input: exit 1 (and write nothing) if any residual block cannot be made plain" };
        var json = CommonOptions.Json();
        var cmd = new Command("convert", "Remove the residual connections of a ResNet checkpoint and save the equivalent plain network")
        {
            input, output, arch, numClasses, rmMode, negative, dtype, verify, tolerance, samples, size, force, allowNonFinite, strict, json,
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
                    : RunOnnx(ctx, p.GetValue(input)!, p.GetValue(output)!, p.GetValue(rmMode), p.GetValue(verify), options, p.GetValue(force), p.GetValue(strict))
                : Run(ctx, p.GetValue(input)!, p.GetValue(output)!, p.GetValue(arch)!, p.GetValue(numClasses), p.GetValue(rmMode),
                    p.GetValue(verify), options, p.GetValue(force), p.GetValue(allowNonFinite), p.GetValue(negative), weights));
        });
        return cmd;
    }

    public static int Run(CliContext ctx, string input, string output, string arch, int? numClasses, RMNet.Rm.RmMode mode, bool verify,
        VerifyOptions options, bool force, bool allowNonFinite, RMNet.Rm.NegativeInputMode negative = RMNet.Rm.NegativeInputMode.PRelu,
        OutputDtype dtype = OutputDtype.Float32)
    {
        using var pending = new PendingOutput(output, force, input);
        ctx.Progress.Stage($"loading {input}");
        using var ckpt = SourceModels.Load(input, arch, numClasses, allowNonFinite, negative);
        var clock = Stopwatch.StartNew();
        var plain = ckpt.ToPlain(mode, ctx.Progress);
        double convertSeconds = clock.Elapsed.TotalSeconds;
        ctx.Progress.Stage($"writing {output}");
        ModelWriter.Save(plain, pending.TempPath, $"rmnet: residual connections removed (RM, {mode.ToString().ToLowerInvariant()} form) from {ckpt.DisplayName}, {Path.GetFileName(input)}"
            + (dtype == OutputDtype.Float16 ? "; float16 weights" : ""), dtype);

        VerificationReport? report = null;
        if (verify)
        {
            int side = ckpt.FixedInputSize ?? options.InputSize;   // IResNet's head fixes it
            ctx.Progress.Stage($"verifying {output} on {options.Samples} images of {side}x{side}");
            using var runner = ModelRunner.OpenConverted(pending.TempPath, ckpt);
            report = Verifier.Verify(ckpt, runner, options);
        }
        long bytes = FileFormats.ModelBytes(pending.TempPath);
        var stages = StageRow.Compare(ckpt.CostByStage(options.InputSize, options.InputSize), plain.CostByStage(options.InputSize, options.InputSize));
        var result = new Result(input, output, ckpt.DisplayName, mode.ToString().ToLowerInvariant(), ckpt.BlockCount, plain.ZeroChannels,
            CostReport.Of(ckpt, options.InputSize, FileFormats.ModelBytes(input)), CostReport.Of(plain, options.InputSize, bytes),
            stages, convertSeconds, report is null ? null : VerificationJson.Of(report), dtype.ToString().ToLowerInvariant());

        if (report is { Passed: false })
        {
            ctx.Document(result);
            ctx.Line(ReportText.Verification(report));
            ctx.Err.WriteLine($"rmnet: error: {output}: converted model differs from the original (max rel error {Format.Sci(report.MaxRelError)} > {Format.Sci(report.Tolerance)}); nothing written");
            return ExitCodes.NotEquivalent;
        }
        pending.Commit();
        ctx.Document(result);
        ctx.Line($"converted {input}: {ckpt.Description}{(ckpt.Family == "resnet" ? $", {result.RmMode} RM" : "")}{(dtype == OutputDtype.Float16 ? ", float16 weights" : "")}");
        foreach (var line in ReportText.CostTable(result.Original, result.Converted)) ctx.Line(line);
        foreach (var line in ReportText.StageTable(stages, options.InputSize)) ctx.Line(line);
        if (plain.ZeroChannels > 0) ctx.Line($"  grouped RM padded the reserved channels with {plain.ZeroChannels} zero channels in all, so they fill whole groups");
        if (report is not null) ctx.Line(ReportText.Verification(report));
        ctx.Line($"wrote {output} ({Format.Bytes(bytes)}); RM transform took {convertSeconds:F2} s");
        return ExitCodes.Success;
    }

    /// <summary>ONNX in, ONNX out: graph-level RM, blocks reported one by one.</summary>
    public static int RunOnnx(CliContext ctx, string input, string output, RMNet.Rm.RmMode mode, bool verify, VerifyOptions options, bool force, bool strict)
    {
        if (FileFormats.FromExtension(output) != FileFormat.Onnx)
            throw new ModelInputException(output, "an ONNX model converts to .onnx only");
        using var pending = new PendingOutput(output, force, input);
        ctx.Progress.Stage($"loading {input}");
        var result = RMNet.Onnx.OnnxConversion.Convert(input, mode);
        ctx.Progress.Stage($"writing {output}");
        RMNet.Onnx.OnnxModelFile.Save(result.Model, pending.TempPath);
        VerificationReport? report = null;
        if (verify)
        {
            ctx.Progress.Stage($"verifying {output} in ONNX Runtime on {options.Samples} inputs");
            report = Verifier.Verify(input, pending.TempPath, options);
        }
        var before = RMNet.Onnx.OnnxSummary.Read(input);
        var after = RMNet.Onnx.OnnxSummary.Read(pending.TempPath);
        int plain = result.Blocks.Count(b => b.Plain);
        var json = new OnnxResult(input, output, result.Blocks.Count, plain, result.FoldedBatchNorms, result.MergedBranches, result.Blocks,
            new CostReport(before.Parameters, 0, 0, 0, FileFormats.ModelBytes(input)), new CostReport(after.Parameters, 0, 0, 0, FileFormats.ModelBytes(pending.TempPath)),
            report is null ? null : VerificationJson.Of(report));
        ctx.Document(json);
        ctx.Line($"converted {input}: {plain} of {result.Blocks.Count} residual blocks made plain, {result.FoldedBatchNorms} BatchNormalization nodes folded, {result.MergedBranches} parallel-branch sums merged into one conv");
        foreach (var b in result.Blocks)
            ctx.Line($"  {b.Name}: {b.Shortcut} shortcut, {b.Convs} convs: {(b.Plain ? "plain" : "kept: " + b.Reason)}");
        ctx.Line($"  parameters {Format.Count(before.Parameters)} -> {Format.Count(after.Parameters)}");
        if (report is not null) ctx.Line(ReportText.Verification(report));
        if (report is { Passed: false })
        {
            ctx.Err.WriteLine($"rmnet: error: {output}: converted model differs from the original (max rel error {Format.Sci(report.MaxRelError)} > {Format.Sci(report.Tolerance)}); nothing written");
            return ExitCodes.NotEquivalent;
        }
        if (strict && plain < result.Blocks.Count)
        {
            ctx.Err.WriteLine($"rmnet: error: {input}: {result.Blocks.Count - plain} residual block(s) could not be made plain (--strict); nothing written");
            return ExitCodes.NotEquivalent;
        }
        pending.Commit();
        ctx.Line($"wrote {output} ({Format.Bytes(FileFormats.ModelBytes(output))})");
        return ExitCodes.Success;
    }
}
