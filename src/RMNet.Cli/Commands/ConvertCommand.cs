using System.CommandLine;
using System.Diagnostics;
using RMNet.IO;
using RMNet.Models;
using RMNet.Verification;

namespace RMNet.Cli.Commands;

/// <summary><c>rmnet convert</c>: checkpoint in, plain model out (format by extension), optionally verified before it lands.</summary>
public static class ConvertCommand
{
    public sealed record Result(string Input, string Output, string Architecture, int Blocks, CostReport Original, CostReport Converted,
        double ConvertSeconds, VerificationJson? Verification);

    public static Command Create(CommandIO io)
    {
        var input = new Argument<string>("checkpoint") { Description = "PyTorch checkpoint (.pth, .pt, .pth.tar) or .safetensors" };
        var output = new Option<string>("--output", "-o") { Description = "Output file: .onnx, .safetensors or .pth", Required = true };
        var arch = CommonOptions.Arch();
        var numClasses = CommonOptions.NumClasses();
        var verify = new Option<bool>("--verify") { Description = "Check the written model against the original before keeping it (exit 1 and no output if it differs)" };
        var tolerance = CommonOptions.Tolerance();
        var samples = CommonOptions.Samples();
        var size = CommonOptions.InputSize();
        var force = new Option<bool>("--force") { Description = "Overwrite an existing output file" };
        var allowNonFinite = CommonOptions.AllowNonFinite();
        var json = CommonOptions.Json();
        var cmd = new Command("convert", "Remove the residual connections of a ResNet checkpoint and save the equivalent plain network")
        {
            input, output, arch, numClasses, verify, tolerance, samples, size, force, allowNonFinite, json,
        };
        cmd.SetAction(p =>
        {
            var ctx = io.Context(p, json);
            return ctx.Run(() => Run(ctx, p.GetValue(input)!, p.GetValue(output)!, p.GetValue(arch)!, p.GetValue(numClasses),
                p.GetValue(verify), new VerifyOptions(p.GetValue(samples), p.GetValue(size), p.GetValue(tolerance)), p.GetValue(force),
                p.GetValue(allowNonFinite)));
        });
        return cmd;
    }

    public static int Run(CliContext ctx, string input, string output, string arch, int? numClasses, bool verify, VerifyOptions options,
        bool force, bool allowNonFinite)
    {
        using var pending = new PendingOutput(output, force, input);
        ctx.Progress.Stage($"loading {input}");
        using var ckpt = ResNetCheckpoint.Load(input, arch, numClasses, allowNonFinite);
        var clock = Stopwatch.StartNew();
        var plain = ckpt.ToPlain(ctx.Progress);
        double convertSeconds = clock.Elapsed.TotalSeconds;
        ctx.Progress.Stage($"writing {output}");
        ModelWriter.Save(plain, pending.TempPath, $"rmnet: residual connections removed (RM, dense form) from {ckpt.Spec.DisplayName}, {Path.GetFileName(input)}");

        VerificationReport? report = null;
        if (verify)
        {
            ctx.Progress.Stage($"verifying {output} on {options.Samples} images of {options.InputSize}x{options.InputSize}");
            using var runner = ModelRunner.OpenConverted(pending.TempPath, ckpt);
            report = Verifier.Verify(ckpt, runner, options);
        }
        long bytes = new FileInfo(pending.TempPath).Length;
        var result = new Result(input, output, ckpt.Spec.DisplayName, ckpt.Spec.Blocks().Count(),
            CostReport.Of(ckpt.Spec, options.InputSize, new FileInfo(input).Length), CostReport.Of(plain, options.InputSize, bytes),
            convertSeconds, report is null ? null : VerificationJson.Of(report));

        if (report is { Passed: false })
        {
            ctx.Document(result);
            ctx.Line(ReportText.Verification(report));
            ctx.Err.WriteLine($"rmnet: error: {output}: converted model differs from the original (max rel error {Format.Sci(report.MaxRelError)} > {Format.Sci(report.Tolerance)}); nothing written");
            return ExitCodes.NotEquivalent;
        }
        pending.Commit();
        ctx.Document(result);
        ctx.Line($"converted {input}: {ReportText.Describe(ckpt.Spec)}");
        foreach (var line in ReportText.CostTable(result.Original, result.Converted)) ctx.Line(line);
        if (report is not null) ctx.Line(ReportText.Verification(report));
        ctx.Line($"wrote {output} ({Format.Bytes(bytes)}); RM transform took {convertSeconds:F2} s");
        return ExitCodes.Success;
    }
}
