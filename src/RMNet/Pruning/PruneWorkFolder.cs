using System.Text.Json;
using System.Text.Json.Nodes;
using RMNet.IO;

namespace RMNet.Pruning;

/// <summary>
/// The work folder of a pruning run. It records the settings each stage depends on; when a run is repeated with
/// other settings, the stages they touch are discarded and the earlier ones kept: a new --target-flops reuses the
/// sparsity training (not with the Taylor criterion, which prunes in it), more --finetune-epochs continue the
/// fine-tuning, a new --distill redoes it, a new --finetune-form or --finetune-branches redoes the RM model's, a new
/// --residual-target-flops redoes the residual comparison's plan (with the Taylor criterion, its sparsity stage too)
/// and keeps the RM model's stages, a new penalty or data starts afresh.
/// </summary>
public static class PruneWorkFolder
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
            if (!Same("sparsity"))
                messages.Add(Discard(workDir, "the checkpoint, data, training, penalty, criterion or training form changed", "rm-*", "residual-*", "report.json"));
            else if (!Same("plan"))
                messages.Add(settings.Criterion.PrunesWhileTraining()
                    // The Taylor criterion prunes inside the sparsity stage, so a new target redoes that stage too.
                    ? Discard(workDir, "the pruning target changed, and a Taylor criterion prunes while training", "rm-*", "residual-*", "report.json")
                    : Discard(workDir, "the pruning target changed; sparsity training kept", "*-plan.json", "*-finetuned.*", "*-pruned.*"));
            else if (!Same("finetune"))
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
            // Only the residual comparison depends on its own target (checked after the stages above, which discard it with the rest).
            if (Same("sparsity") && Same("plan") && !Same("residual"))
                messages.Add(settings.Criterion.PrunesWhileTraining()
                    ? Discard(workDir, "the residual comparison's target changed, and a Taylor criterion prunes while training; the RM model's stages kept", "residual-*")
                    : Discard(workDir, "the residual comparison's target changed; its sparsity training and the RM model's stages kept",
                        "residual-plan.json", "residual-finetuned.*"));
        }
        AtomicFile.Write(path, s => JsonSerializer.Serialize(s, current, new JsonSerializerOptions { WriteIndented = true }));
        return messages;
    }

    static string Discard(string workDir, string why, params string[] patterns)
    {
        var removed = patterns.SelectMany(p => Directory.EnumerateFiles(workDir, p)).Distinct().Order(StringComparer.Ordinal).ToList();
        foreach (var file in removed) File.Delete(file);
        return $"{why}: discarded {(removed.Count == 0 ? "nothing" : string.Join(", ", removed.Select(Path.GetFileName)))}";
    }
}
