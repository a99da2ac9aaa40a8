using System.CommandLine;
using RMNet.IO;
using RMNet.Models;
using RMNet.Verification;

namespace RMNet.Cli.Commands;

/// <summary><c>rmnet demo</c>: the whole path on an embedded seeded ResNet-18, no file needed.</summary>
internal static class DemoCommand
{
    public sealed record Result(string Architecture, string Output, CostReport Original, CostReport Converted,
        VerificationJson TorchSharp, VerificationJson OnnxRuntime);

    public static Command Create(CommandIO io)
    {
        var output = CommonOptions.Output("Where to write the plain ONNX model (overwritten)", "rmnet-demo.onnx");
        var size = CommonOptions.InputSize();
        var json = CommonOptions.Json();
        var cmd = new Command("demo", "Convert a seeded ResNet-18 with non-trivial BN statistics, verify it, and write rmnet-demo.onnx")
        {
            output, size, json,
        };
        cmd.SetAction(p =>
        {
            var ctx = io.Context(p, json);
            return ctx.Run(() => Run(ctx, p.GetValue(output)!, p.GetValue(size)));
        });
        return cmd;
    }

    static int Run(CliContext ctx, string output, int size)
    {
        var spec = ResNetSpec.Named("resnet18");
        using var ckpt = ResNetCheckpoint.FromStateDict(RandomResNet.Create(spec, seed: 2021, source: "demo resnet18"));
        var plain = ckpt.ToPlain(progress: ctx.Progress, cancellationToken: ctx.Cancellation);
        var options = new VerifyOptions(Samples: 2, InputSize: size);

        using var plainRunner = ModelRunner.ForModule(plain.ToModule());
        var torchReport = Verifier.Verify(ckpt, plainRunner, options, ctx.Cancellation);

        using var pending = new PendingOutput(output, overwrite: true);
        ctx.RemoveStaleTemporaries(output);
        ModelWriter.Save(plain, pending.TempPath, "rmnet demo: seeded ResNet-18, residual connections removed", cancellationToken: ctx.Cancellation);
        VerificationReport ortReport;
        using (var onnxRunner = ModelRunner.OpenConverted(pending.TempPath, ckpt, ctx.Cancellation))
            ortReport = Verifier.Verify(ckpt, onnxRunner, options, ctx.Cancellation);
        long bytes = FileFormats.ModelBytes(pending.TempPath);
        bool passed = torchReport.Passed && ortReport.Passed;
        if (passed) pending.Commit();

        var result = new Result(spec.DisplayName, output, CostReport.Of(ckpt, size), CostReport.Of(plain, size, bytes),
            VerificationJson.Of(torchReport), VerificationJson.Of(ortReport));
        ctx.Document(result);
        ctx.Line($"RMNet demo: {ckpt.Description}, seeded weights and BN statistics");
        ctx.Line($"  {spec.Blocks().Count()} residual blocks -> {plain.Convs.Count()} plain convs, no additions");
        foreach (var line in ReportText.CostTable(result.Original, result.Converted)) ctx.Line(line);
        ctx.Line("TorchSharp plain model:  " + ReportText.Verification(torchReport));
        ctx.Line("ONNX Runtime plain model: " + ReportText.Verification(ortReport));
        ctx.Line(passed ? $"wrote {output} ({Format.Bytes(bytes)})" : "not written: the conversion is not equivalent");
        return passed ? ExitCodes.Success : ExitCodes.NotEquivalent;
    }
}
