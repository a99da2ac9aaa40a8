using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using RMNet.IO;
using RMNet.Models;
using RMNet.Pruning;

namespace RMNet.Cli.Commands;

/// <summary>
/// <c>rmnet prune</c>: RM-convert a trained ResNet keeping a scale per channel, sparsity-train, prune globally to a
/// MACs target, fine-tune, fold and export; optionally the same budget on the ResNet itself for comparison.
/// Every stage is saved in a work folder and a re-run resumes.
/// </summary>
internal static class PruneCommand
{
    public sealed record Result(string Input, string Output, string Data, double TargetFlops, double? ResidualTargetFlops, IReadOnlyList<PrunedModel> Models, string WorkDir, double Seconds);

    public static Command Create(CommandIO io)
    {
        var input = new Argument<string>("checkpoint") { Description = "Trained ResNet checkpoint (.pth or .safetensors), e.g. from rmnet train" };
        var output = CommonOptions.Output("Pruned plain model: .onnx, .safetensors or .pth");
        var target = new Option<double>("--target-flops") { Description = "MACs to reach, as a fraction of the original ResNet's", DefaultValueFactory = _ => 0.5 };
        var sparsityEpochs = new Option<int>("--sparsity-epochs") { Description = "Epochs of training while pruning (taylor) or with the L1 penalty on channel scales (l1)", DefaultValueFactory = _ => 3 };
        var penalty = new Option<double>("--penalty") { Description = "L1 penalty weight on the channel scales with --criterion l1 (large for a short schedule: the scales start near 1)", DefaultValueFactory = _ => 1e-2 };
        var criterion = new Option<string>("--criterion")
        {
            Description = "How channels are chosen: taylor (no penalty: removed in rounds while training, least Taylor saliency first), taylor-per-mac (the same, least saliency per MAC saved first) or l1 (L1 penalty on the scales, then the smallest go)",
            DefaultValueFactory = _ => "taylor",
        };
        criterion.AcceptOnlyFromAmong("taylor", "taylor-per-mac", "l1");
        var finetuneEpochs = new Option<int>("--finetune-epochs") { Description = "Epochs of fine-tuning after pruning", DefaultValueFactory = _ => 3 };
        var multiple = new Option<int>("--channel-multiple") { Description = "Keep a multiple of this many channels in every layer (conv kernels run blocks of 8 channels fastest; 1: any count)", DefaultValueFactory = _ => PruneSettings.DefaultChannelMultiple };
        var residual = new Option<bool>("--compare-residual") { Description = "Also prune the ResNet itself (inner channels only) to the same MACs (or --residual-target-flops); writes <output>.residual.onnx/.pth" };
        var residualTarget = new Option<double?>("--residual-target-flops")
        {
            Description = "With --compare-residual: the residual comparison's own MACs target (default: --target-flops), e.g. a lower one to compare at about equal speed",
        };
        var workDir = new Option<string?>("--work-dir") { Description = "Folder for each stage's results, resumed on a re-run (default: <output>.work)" };
        var restart = new Option<bool>("--restart") { Description = "Discard the work folder's stages and start afresh (other settings discard only the stages they affect)" };
        var form = new Option<string?>("--train-form")
        {
            Description = "Train the gated ResNet in residual form (default for Basic-block ResNets) or the plain network itself (any ResNet); both prune every plain channel",
        };
        form.AcceptOnlyFromAmong("residual", "plain");
        var finetuneForm = new Option<string?>("--finetune-form")
        {
            Description = "Fine-tune the pruned plain network itself (plain, the default: carried channels learn too, and only kept channels are trained) or the masked gated ResNet (residual, with --train-form residual)",
        };
        finetuneForm.AcceptOnlyFromAmong("residual", "plain");
        var branches = new Option<bool>("--finetune-branches")
        {
            Description = "Fine-tune the pruned plain network with RepVGG training-time branches (a 1x1 conv+BN beside each conv, an identity BN where widths match), folded into the convs at export: same deployed network and MACs",
        };
        var distill = new Option<double>("--distill")
        {
            Description = "While fine-tuning, also learn the original ResNet's softened outputs with this weight (0..1; 0: labels only)",
            HelpName = "W",
            DefaultValueFactory = _ => 0,
        };
        var force = new Option<bool>("--force") { Description = "Overwrite existing outputs" };
        var json = CommonOptions.Json();
        var training = new TrainingArguments(learningRate: 0.02);
        var cmd = new Command("prune", "Prune every channel of an RM-converted ResNet to a MACs budget, fine-tune and export")
        {
            input, output, target, sparsityEpochs, penalty, criterion, finetuneEpochs, multiple, form, finetuneForm, branches, distill, residual, residualTarget, workDir, restart, force, json,
        };
        training.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var ctx = io.Context(p, json);
            return ctx.Run(() =>
            {
                string outputPath = p.GetValue(output)!;
                var options = training.Options(p, 0);
                var settings = new PruneSettings(p.GetValue(target), p.GetValue(sparsityEpochs), p.GetValue(penalty), p.GetValue(finetuneEpochs), options)
                {
                    ChannelMultiple = p.GetValue(multiple),
                    Distill = p.GetValue(distill),
                    Criterion = p.GetValue(criterion) switch { "l1" => PruningCriterion.L1, "taylor-per-mac" => PruningCriterion.TaylorPerMac, _ => PruningCriterion.Taylor },
                    FinetuneForm = ParseForm(p.GetValue(finetuneForm)) ?? TrainForm.Plain,
                    FinetuneBranches = p.GetValue(branches),
                    ResidualTargetFlops = p.GetValue(residualTarget),
                };
                TrainForm? trainForm = ParseForm(p.GetValue(form));
                return Run(ctx, p, training, p.GetValue(input)!, outputPath, settings, trainForm, p.GetValue(residual),
                    p.GetValue(workDir) ?? outputPath + ".work", p.GetValue(restart), p.GetValue(force));
            });
        });
        return cmd;
    }

    static TrainForm? ParseForm(string? value) => value switch { "residual" => TrainForm.Residual, "plain" => TrainForm.Plain, _ => null };

    static int Run(CliContext ctx, ParseResult p, TrainingArguments training, string input, string output, PruneSettings settings,
        TrainForm? form, bool compareResidual, string workDir, bool restart, bool force)
    {
        void CheckFraction(double value, string option)
        {
            if (value is <= 0 or >= 1) throw new ModelInputException(input, $"{option} must be between 0 and 1 (a fraction of the original's MACs)");
        }
        CheckFraction(settings.TargetFlops, "--target-flops");
        if (settings.ResidualTargetFlops is { } residualTarget)
        {
            if (!compareResidual) throw new ModelInputException(input, "--residual-target-flops needs --compare-residual: it is the residual comparison's target");
            CheckFraction(residualTarget, "--residual-target-flops");
        }
        if (settings.SparsityEpochs < 0 || settings.FinetuneEpochs < 0 || settings.Penalty < 0 || settings.ChannelMultiple < 1)
            throw new ModelInputException(input, "--sparsity-epochs, --finetune-epochs and --penalty must not be negative, --channel-multiple at least 1");
        if (settings.Distill is < 0 or > 1) throw new ModelInputException(input, "--distill must be between 0 and 1");
        ModelWriter.CheckExtension(output);
        string stem = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, Path.GetFileNameWithoutExtension(output));
        string residualPth = stem + ".residual.pth", residualOnnx = stem + ".residual.onnx";
        AtomicFile.CheckWritable(output, force, input);
        if (compareResidual) { AtomicFile.CheckWritable(residualPth, force, input); AtomicFile.CheckWritable(residualOnnx, force, input); }
        ctx.RemoveStaleTemporaries(output);
        if (Directory.Exists(workDir)) ctx.RemoveStaleTemporaries(workDir);
        var clock = Stopwatch.StartNew();
        ctx.Progress.Stage($"loading {input}");
        using var source = StopRequest.Abandonable(() => ResNetCheckpoint.Load(input), ctx.Cancellation);
        bool gatable = GatedResNet.Supports(source.Spec);
        if (form == TrainForm.Residual && !gatable)
            throw new ModelInputException(input, $"{source.DisplayName}: --train-form residual needs a Basic-block ResNet without SE; use --train-form plain");
        settings = settings with { Form = form ?? (gatable ? TrainForm.Residual : TrainForm.Plain) };
        if (settings.Form == TrainForm.Plain && settings.FinetuneForm == TrainForm.Residual)
            throw new ModelInputException(input, "--finetune-form residual needs --train-form residual: a network trained in plain form has no residual form to fine-tune");
        if (settings.FinetuneBranches && !settings.FinetunesCut)
            throw new ModelInputException(input, "--finetune-branches needs --train-form residual and --finetune-form plain: the branches go beside the convs of the pruned plain network, which only that pair fine-tunes");
        foreach (var message in PruneWorkFolder.Prepare(workDir, input, settings, restart)) ctx.Progress.Stage(message);
        using var data = training.OpenData(p, settings.Training, ctx.Progress);
        if (data.Train.Channels != source.Spec.InputChannels || data.Train.ClassCount != source.Spec.NumClasses)
            throw new ModelInputException(input, $"{source.DisplayName} takes {source.Spec.InputChannels}-channel images and has {source.Spec.NumClasses} classes; "
                + $"the data has {data.Train.Channels} channels and {data.Train.ClassCount} classes");
        var pipeline = new PrunePipeline(source, data, settings, workDir, message => ctx.Progress.Stage(message), ctx.Progress, ctx.Cancellation);
        if (compareResidual) pipeline.CheckResidualReachable();   // before hours of RM pruning, not after
        var models = new List<PrunedModel> { pipeline.Original() };
        string residualTargetNote = compareResidual && pipeline.ResidualTargetMacs != pipeline.TargetMacs ? $", the residual comparison's {pipeline.ResidualTargetMacs:N0}" : "";
        ctx.Progress.Stage($"original: test accuracy {100 * models[0].TestAccuracy:F2}%, {models[0].Macs:N0} MACs; target {pipeline.TargetMacs:N0} MACs{residualTargetNote}");
        var (plain, pruned, _) = pipeline.PruneRm(output);
        models.Add(plain);
        models.Add(pruned);
        if (compareResidual) models.Add(pipeline.PruneResidual(residualPth, residualOnnx).Pruned);
        var result = new Result(input, output, data.Name, settings.TargetFlops, settings.ResidualTargetFlops, models, workDir, clock.Elapsed.TotalSeconds);
        AtomicFile.Write(Path.Combine(workDir, "report.json"), s => JsonSerializer.Serialize(s, result, CliContext.JsonOptions));
        ctx.Document(result);
        var rows = new List<string[]> { new[] { "model", "test acc", "parameters", "MACs", "vs original", "max rel error vs parent" } };
        rows.AddRange(models.Select(m => new[]
        {
            m.Model, $"{100 * m.TestAccuracy:F2}%", m.Parameters.ToString("N0"), m.Macs.ToString("N0"), Format.Ratio((double)m.Macs / models[0].Macs),
            m.Equivalence is { } e ? e.MaxRelError.ToString("E2") : "",
        }));
        string residualTargetText = settings.ResidualTargetFlops is { } r ? $" ({r:P0} for the residual comparison)" : "";
        ctx.Line($"{input} on {data.Name} ({data.Test.Count} test images), target {settings.TargetFlops:P0} of the original's MACs{residualTargetText}:");
        foreach (var line in Format.Table(rows)) ctx.Line("  " + line);
        ctx.Line($"wrote {output}{(compareResidual ? $", {residualOnnx}, {residualPth}" : "")}; stages in {workDir}; {clock.Elapsed.TotalMinutes:F1} min");
        return ExitCodes.Success;
    }
}
