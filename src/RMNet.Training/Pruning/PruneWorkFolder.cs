using System.Text.Json;
using System.Text.Json.Nodes;
using RMNet.IO;

namespace RMNet.Pruning;

/// <summary>
/// The work folder of a pruning run. It records the settings each stage depends on; when a run is repeated with
/// other settings, the stages they touch are discarded and the earlier ones kept: a new --target-flops reuses the
/// sparsity training (not with the Taylor criterion, which prunes in it), more --finetune-epochs continue the
/// fine-tuning, a new --distill redoes it, a new --finetune-form or --finetune-branches redoes the RM model's, a new
/// penalty or data starts afresh. With --residual-target-flops each model has its own target, and a new one redoes
/// only that model's stages from its plan on (with the Taylor criterion, from its sparsity stage).
/// </summary>
internal static class PruneWorkFolder
{
    const string SettingsFile = "settings.json";

    /// <summary>Creates or checks <paramref name="workDir"/>; returns one line per discarded or extended stage.</summary>
    public static IReadOnlyList<string> Prepare(string workDir, string input, PruneSettings settings, bool restart)
    {
        var messages = new List<string>();
        if (restart && Directory.Exists(workDir))
        {
            Directory.Delete(workDir, recursive: true);
            messages.Add($"--restart: discarded {workDir}");
        }
        Directory.CreateDirectory(workDir);
        var current = new JsonObject
        {
            // What the sparsity stage (and so everything after it) depends on.
            ["sparsity"] = JsonSerializer.SerializeToNode(new
            {
                Input = Path.GetFullPath(input), settings.Training, settings.Penalty, settings.SparsityEpochs, settings.CalibrationImages,
                Form = settings.Form.ToString(),
            }),
            ["plan"] = JsonSerializer.SerializeToNode(new { settings.TargetFlops, settings.MinKeepFraction, settings.ChannelMultiple }),
            ["finetune"] = JsonSerializer.SerializeToNode(new { settings.FinetuneEpochs, settings.Distill }),
        };
        // Folders written before the Taylor criterion existed used L1: the default leaves their settings unchanged.
        if (settings.Criterion != PruningCriterion.L1) current["sparsity"]!["Criterion"] = settings.Criterion.ToString();
        // Folders written before plain-form fine-tuning record no form: they fine-tuned the masked network, as --finetune-form residual does.
        if (settings.FinetunesCut) current["finetune"]!["Form"] = TrainForm.Plain.ToString();
        if (settings.FinetuneBranches) current["finetune"]!["Branches"] = true;
        // Recorded only where the comparison has its own target, so folders from before the option stay unchanged.
        if (settings.ResidualTarget != settings.TargetFlops) current["residual"] = JsonSerializer.SerializeToNode(new { settings.ResidualTargetFlops });
        string path = Path.Combine(workDir, SettingsFile);
        if (File.Exists(path))
        {
            JsonObject saved;
            try { saved = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? new JsonObject(); }
            catch (JsonException) { saved = new JsonObject(); }
            bool Same(string stage) => saved[stage]?.ToJsonString() == current[stage]?.ToJsonString();
            // Each model's plan depends on its own target and the shared channel rules; a model whose plan is unchanged keeps its stages.
            bool Rule(string key) => saved["plan"]?[key]?.ToJsonString() == current["plan"]![key]!.ToJsonString();
            bool sameRmPlan = Same("plan");
            bool sameResidualPlan = Rule("MinKeepFraction") && Rule("ChannelMultiple") && ResidualTargetOf(saved) == settings.ResidualTarget;
            if (!Same("sparsity"))
                messages.Add(Discard(workDir, "the checkpoint, data, training, penalty, criterion or training form changed", "rm-*", "residual-*", "report.json"));
            else
            {
                if (!sameRmPlan || !sameResidualPlan) messages.Add(DiscardPlans(workDir, settings.Criterion, sameRmPlan, sameResidualPlan));
                if ((sameRmPlan || sameResidualPlan) && !Same("finetune"))
                {
                    int before = saved["finetune"]?["FinetuneEpochs"]?.GetValue<int>() ?? int.MaxValue;
                    // Work folders written before --distill existed fine-tuned without it.
                    bool sameDistill = (saved["finetune"]?["Distill"]?.GetValue<double>() ?? 0) == settings.Distill;
                    bool Recorded(string key) => saved["finetune"]?[key]?.ToJsonString() == current["finetune"]![key]?.ToJsonString();
                    bool sameRmFinetune = Recorded("Form") && Recorded("Branches");
                    if (!sameDistill || settings.FinetuneEpochs < before)
                        messages.Add(Discard(workDir, sameDistill ? "fewer fine-tuning epochs asked; earlier stages kept" : "the distillation weight changed; earlier stages kept",
                            "*-finetuned.*", "*-pruned.*"));
                    else
                    {
                        // Only the RM model is fine-tuned in another form or with other branches; the residual comparison keeps its own.
                        if (!sameRmFinetune)
                            messages.Add(Discard(workDir, "the fine-tuning form or its training-time branches changed; earlier stages and the residual comparison kept", "rm-finetuned.*", "rm-pruned.*"));
                        if (settings.FinetuneEpochs > before)
                            messages.Add($"fine-tuning extended from {before} to {settings.FinetuneEpochs} epochs");
                    }
                }
            }
        }
        AtomicFile.Write(path, s => JsonSerializer.Serialize(s, current, new JsonSerializerOptions { WriteIndented = true }));
        return messages;
    }

    /// <summary>The residual comparison's target a settings record stands for: its own where recorded, else the shared one.</summary>
    static double? ResidualTargetOf(JsonObject settings) =>
        settings["residual"]?["ResidualTargetFlops"]?.GetValue<double>() ?? settings["plan"]?["TargetFlops"]?.GetValue<double>();

    /// <summary>
    /// Discards the stages that follow the plan of each model whose plan changed. The Taylor criterion prunes inside
    /// the sparsity stage, so with it a new target redoes that stage too; with L1 the sparsity training is kept.
    /// </summary>
    static string DiscardPlans(string workDir, PruningCriterion criterion, bool keepRm, bool keepResidual)
    {
        bool taylor = criterion.PrunesWhileTraining();
        string[] Stages(string model) => taylor ? [$"{model}-*"] : [$"{model}-plan.json", $"{model}-finetuned.*", $"{model}-pruned.*"];
        var patterns = (keepRm ? [] : Stages("rm")).Concat(keepResidual ? [] : Stages("residual")).ToList();
        if (taylor && !keepRm && !keepResidual) patterns.Add("report.json");
        string why = (keepRm, keepResidual, taylor) switch
        {
            (false, false, true) => "the pruning target changed, and a Taylor criterion prunes while training",
            (false, false, false) => "the pruning target changed; sparsity training kept",
            (false, true, true) => "the pruning target changed, and a Taylor criterion prunes while training; the residual comparison, whose target is unchanged, kept",
            (false, true, false) => "the pruning target changed; sparsity training and the residual comparison, whose target is unchanged, kept",
            (true, _, true) => "the residual comparison's target changed, and a Taylor criterion prunes while training; the RM model's stages kept",
            (true, _, false) => "the residual comparison's target changed; its sparsity training and the RM model's stages kept",
        };
        return Discard(workDir, why, [.. patterns]);
    }

    static string Discard(string workDir, string why, params string[] patterns)
    {
        var removed = patterns.SelectMany(p => Directory.EnumerateFiles(workDir, p)).Distinct().Order(StringComparer.Ordinal).ToList();
        foreach (var file in removed) File.Delete(file);
        return $"{why}: discarded {(removed.Count == 0 ? "nothing" : string.Join(", ", removed.Select(Path.GetFileName)))}";
    }
}
