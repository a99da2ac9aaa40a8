using System.Text.Json;
using RMNet.Blocks;
using RMNet.Data;
using RMNet.IO;
using RMNet.Models;
using RMNet.Plain;
using RMNet.Rm;
using RMNet.Training;
using RMNet.Verification;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>
/// RM pruning of a trained ResNet, stage by stage, each stage's result saved in a work folder so a stopped run
/// resumes where it stopped: (1) a scale on every channel of the dense RM plain form, either as gates on the
/// ResNet trained in residual form (<see cref="GatedResNet"/>, the default) or as BatchNorms on the plain network
/// (<see cref="ScaledPlainNet"/>), equal to the original either way, (2) sparsity training with an L1 penalty on
/// all scales (or training while pruning by Taylor saliency), (3) global pruning to the MACs target, (4) fine-tuning
/// of the pruned plain network itself (<see cref="PruneSettings.FinetunesCut"/>, optionally with RepVGG training-time
/// branches, <see cref="PruneSettings.FinetuneBranches"/>) or of the masked network with the
/// pruned channels held at zero, optionally distilled from the original, (5) folding and channel removal, checked
/// equal to the fine-tuned network. <see cref="PruneResidual"/> runs the same budget (or its own,
/// <see cref="PruneSettings.ResidualTargetFlops"/>) on the ResNet itself, where only the blocks' inner channels may go.
/// </summary>
public sealed class PrunePipeline(ResNetCheckpoint source, DataSplits data, PruneSettings settings, string workDir,
    Action<string> log, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default)
{
    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Test images the exported models are compared on against their parents.</summary>
    const int EquivalenceImages = 256;

    int Height => data.Test.Height;
    int Width => data.Test.Width;

    /// <summary>MACs the RM-pruned model must reach.</summary>
    public long TargetMacs => Macs(settings.TargetFlops);

    /// <summary>MACs the residual-constrained comparison must reach (<see cref="PruneSettings.ResidualTarget"/>).</summary>
    public long ResidualTargetMacs => Macs(settings.ResidualTarget);

    long Macs(double fraction) => (long)(fraction * ResNetCost.MultiplyAccumulates(source.Spec, Height, Width));

    /// <summary>The original ResNet's accuracy and deployed cost.</summary>
    public PrunedModel Original()
    {
        using var model = source.CreateModule();
        var spec = source.Spec;
        return new PrunedModel("original", Evaluation.Accuracy(model.forward, data.Test), DeployedParameters(spec),
            ResNetCost.MultiplyAccumulates(spec, Height, Width), source.Source, null);
    }

    /// <summary>Runs (or resumes) the RM pruning stages; writes the pruned plain model to <paramref name="output"/> (by extension).</summary>
    /// <returns>The unpruned plain network's figures, then the pruned one's.</returns>
    public (PrunedModel Plain, PrunedModel Pruned, PlainModel Model) PruneRm(string output)
    {
        Directory.CreateDirectory(workDir);
        // (1) RM: the dense form, so every conv is ungrouped and every channel prunable.
        var plain = source.ToPlain(RmMode.Dense);
        using var original = source.CreateModule();
        using var prunable = Prunable(plain);
        var net = prunable.Network;
        var conversion = Compare(original.forward, net.forward);
        double plainAccuracy = Evaluation.Accuracy(net.forward, data.Test);
        log($"rm: {source.DisplayName} -> plain network of {plain.Convs.Count()} convs, {plain.Convs.Sum(c => c.OutChannels):N0} channels, each with a scale "
            + (settings.Form == TrainForm.Residual ? "(gates on the ResNet, trained in residual form)" : "(BatchNorms on the plain network, trained in plain form)")
            + $"; equals the original: max rel error {conversion.MaxRelError:E2} on {conversion.Samples} test images; test accuracy {100 * plainAccuracy:F2}%");
        var plainFigures = new PrunedModel("plain", plainAccuracy, plain.ParameterCount, plain.MultiplyAccumulates(Height, Width), null, conversion);

        // (2) sparsity, (3) pruning plan, (4) fine-tuning
        var cost = CostModels.Plain(plain, Height, Width);
        CheckReachable(prunable.Scales.Select(s => s.Count).ToList(), cost, TargetMacs);
        Sparsify(net, prunable.Scales, cost, TargetMacs, "rm");
        var planValue = Plan("rm", prunable.Scales, cost, TargetMacs);
        PlainModel pruned;
        nn.Module<Tensor, Tensor> fineTuned;
        using var cutNet = settings.FinetunesCut ? CutNetwork(prunable, planValue) : null;
        if (cutNet is null)
        {
            FineTune(net, () => ChannelScales.Mask(prunable.Scales, planValue.Keep), "rm");
            // (5) fold, remove
            pruned = prunable.ToPlain(planValue.Keep);
            fineTuned = net;
        }
        else
        {
            FineTune(cutNet, null, "rm");
            pruned = cutNet.ToPlain();   // (5) fold; the channels went before fine-tuning
            fineTuned = cutNet;
        }

        // check, write
        using var prunedModule = pruned.ToModule();
        var check = Compare(fineTuned.forward, prunedModule.forward);
        double accuracy = Evaluation.Accuracy(prunedModule.forward, data.Test);
        PlainModelFile.Save(pruned, Path.Combine(workDir, "rm-pruned.safetensors"));
        ModelWriter.Save(pruned, output, $"rmnet: RM-pruned {source.DisplayName} to {settings.TargetFlops:P0} of its MACs");
        log($"rm: wrote {output}: {pruned.ParameterCount:N0} parameters, {pruned.MultiplyAccumulates(Height, Width):N0} MACs, test accuracy {100 * accuracy:F2}%; "
            + $"equals the fine-tuned network: max rel error {check.MaxRelError:E2}");
        return (plainFigures, new PrunedModel("rm-pruned", accuracy, pruned.ParameterCount, pruned.MultiplyAccumulates(Height, Width), output, check), pruned);
    }

    /// <summary>
    /// The pruned plain network itself, a BatchNorm after each conv (<see cref="ScaledPlainNet"/>), for fine-tuning in
    /// plain form: the cut of the masked <paramref name="prunable"/>, calibrated to compute what it computes. Its
    /// carried channels' Dirac kernels become ordinary weights, so they learn too, at no cost in MACs.
    /// </summary>
    ScaledPlainNet CutNetwork(IChannelPrunable prunable, ChannelPlan plan)
    {
        ChannelScales.Mask(prunable.Scales, plan.Keep);   // the cut is exact only where the dropped channels are silent
        // The cut folds the running statistics in, so they must describe the pruned network as training sees it
        // (they lag behind the last pruning round, and an undertrained network's never matched its batches).
        using (NewDisposeScope())
            BatchNormStatistics.Reestimate(prunable.Network, CalibrationImages());
        var cut = Calibrated(new ScaledPlainNet(prunable.ToPlain(plan.Keep), settings.FinetuneBranches));
        var check = Compare(prunable.Network.forward, cut.forward);
        string branches = settings.FinetuneBranches
            ? $", training-time branches beside {cut.Branches.Count(b => b is not null)} of {cut.Convs.Count} convs ({cut.Branches.Count(b => b?.HasIdentity == true)} with an identity) to fold in at export"
            : "";
        log($"rm: fine-tuning the pruned plain network itself ({plan.Counts.Sum():N0} channels, a BatchNorm after each conv{branches}, "
            + $"statistics re-estimated on {settings.CalibrationImages:N0} training images); equals the pruned gated ResNet: max rel error {check.MaxRelError:E2} on {check.Samples} test images");
        return cut;
    }

    /// <summary>The network that is trained and cut, in the settings' form.</summary>
    IChannelPrunable Prunable(PlainModel plain) =>
        settings.Form == TrainForm.Residual ? new GatedResNet(source) : Calibrated(new ScaledPlainNet(plain));

    /// <summary><paramref name="net"/>, its BatchNorms set from training images so that it computes what its plain model does.</summary>
    ScaledPlainNet Calibrated(ScaledPlainNet net)
    {
        using (NewDisposeScope())   // frees the sample (not the data set, which Sample may return itself)
            net.Calibrate(CalibrationImages());
        return net;
    }

    /// <summary>The seeded sample of training images scales and statistics are measured on.</summary>
    Tensor CalibrationImages() => data.Train.Sample(settings.CalibrationImages, settings.Training.Seed).Images;

    /// <summary>
    /// Runs (or resumes) the residual-constrained comparison: the same stages on the ResNet, inner channels only, down
    /// to <see cref="ResidualTargetMacs"/>.
    /// Writes the pruned ResNet as a torchvision-named state dict (<c>.pth</c>) and, where given, as ONNX.
    /// </summary>
    public (PrunedModel Pruned, ResNetCheckpoint Model) PruneResidual(string outputPth, string? outputOnnx)
    {
        Directory.CreateDirectory(workDir);
        var cost = ReachableResidualCost();
        using var net = source.CreateResNet();
        var scales = ResidualPruning.InnerScales(net).Select(ChannelScales.Of).ToList();
        Sparsify(net, scales, cost, ResidualTargetMacs, "residual");
        var planValue = Plan("residual", scales, cost, ResidualTargetMacs);
        FineTune(net, () => ChannelScales.Mask(scales, planValue.Keep), "residual");

        var sd = new StateDict("fine-tuned");
        foreach (var (key, t) in net.state_dict()) sd.Add(key, t.detach());
        var prunedSd = ResidualPruning.RemoveChannels(sd, source.Spec, planValue.Keep, outputPth);
        var pruned = ResNetCheckpoint.FromStateDict(prunedSd);
        using var prunedModule = pruned.CreateModule();
        var check = Compare(net.forward, prunedModule.forward);
        double accuracy = Evaluation.Accuracy(prunedModule.forward, data.Test);
        StateDictFile.Save(outputPth, prunedSd.Keys.Select(k => (k, prunedSd[k])));
        if (outputOnnx is not null) Onnx.OnnxModelFile.Save(Lowering.TorchvisionResNet.Lower(pruned.Weights, pruned.Spec), outputOnnx);
        long macs = ResNetCost.MultiplyAccumulates(pruned.Spec, Height, Width);
        log($"residual: wrote {outputPth}{(outputOnnx is null ? "" : $" and {outputOnnx}")}: {DeployedParameters(pruned.Spec):N0} parameters, {macs:N0} MACs, "
            + $"test accuracy {100 * accuracy:F2}%; equals the fine-tuned network: max rel error {check.MaxRelError:E2}");
        return (new PrunedModel("residual-pruned", accuracy, DeployedParameters(pruned.Spec), macs, outputOnnx ?? outputPth, check), pruned);
    }

    /// <summary>
    /// Refuses a target the residual comparison cannot reach (its stream and stem stay whole, so its floor lies far
    /// above the plain network's); call it before <see cref="PruneRm"/> so the refusal comes before any training.
    /// </summary>
    public void CheckResidualReachable() => ReachableResidualCost();

    /// <summary>The residual comparison's cost model, once the target is known to be within its reach.</summary>
    ChannelCostModel ReachableResidualCost()
    {
        try
        {
            var cost = CostModels.ResidualInner(source.Spec, Height, Width);
            CheckReachable(source.Spec.Blocks().Select(b => b.Width).ToList(), cost, ResidualTargetMacs);
            return cost;
        }
        catch (RmException e)
        {
            throw new ModelInputException(source.Source, $"the residual-constrained comparison (--compare-residual): {e.Message}");
        }
    }

    void Sparsify(nn.Module<Tensor, Tensor> net, IReadOnlyList<ChannelScales> scales, ChannelCostModel cost, long target, string name)
    {
        var options = settings.Training with { Epochs = settings.SparsityEpochs };
        string file = $"{name}-sparse.pth";
        if (settings.Criterion.PrunesWhileTraining())
        {
            int done = TrainingCheckpoint.ReadState(Path.Combine(workDir, file))?.EpochsDone ?? 0;
            bool perMac = settings.Criterion == PruningCriterion.TaylorPerMac;
            var pruner = new GradualTaylorPruning(scales, cost, target, settings.MinKeepFraction, settings.ChannelMultiple, options.StepsPerEpoch(data.Train.Count), options.Epochs, done,
                line => log($"{name}: pruning {line}"), perMac);
            using var pruning = new Trainer(net, options) { AfterStep = pruner.AfterStep };
            Train(net, pruning, options, file, $"{name}: training while pruning by Taylor saliency{(perMac ? " per MAC" : "")} ({pruner.Rounds} rounds over {scales.Sum(s => s.Count):N0} channels)");
            return;
        }
        using var trainer = new Trainer(net, options)
        {
            Penalty = () => settings.Penalty * scales.Select(s => s.L1()).Aggregate((a, b) => a + b),
        };
        Train(net, trainer, options, file, $"{name}: sparsity training (L1 {settings.Penalty:G3} on {scales.Sum(s => s.Count):N0} scales)");
    }

    /// <summary>Refuses a target that layers of these widths cannot reach under the settings' minimum keep and channel multiple.</summary>
    void CheckReachable(IReadOnlyList<int> widths, ChannelCostModel cost, long target) =>
        ChannelSelection.CheckReachable(widths, cost, target, settings.MinKeepFraction, settings.ChannelMultiple);

    ChannelPlan Plan(string name, IReadOnlyList<ChannelScales> scales, ChannelCostModel cost, long target)
    {
        string path = Path.Combine(workDir, $"{name}-plan.json");
        ChannelPlan plan;
        if (File.Exists(path))
        {
            plan = JsonSerializer.Deserialize<ChannelPlan>(File.ReadAllText(path), Json) ?? throw new ModelInputException(path, "empty pruning plan");
            if (plan.Keep.Count != scales.Count || plan.Keep.Zip(scales).Any(p => p.First.Length != p.Second.Count))
                throw new ModelInputException(path, "the pruning plan does not fit this model; use another --work-dir");
            log($"{name}: pruning plan read from {path}");
        }
        else
        {
            var importance = scales.Select(s => s.Importance()).ToList();
            plan = settings.Criterion.PrunesWhileTraining()
                ? ChannelSelection.Nonzero(importance, cost)    // the rounds already chose; their removed channels are at zero
                : ChannelSelection.Select(importance, cost, target, settings.MinKeepFraction, settings.ChannelMultiple);
            AtomicFile.Write(path, s => JsonSerializer.Serialize(s, plan, Json));
        }
        int total = plan.Keep.Sum(k => k.Length), kept = plan.Counts.Sum();
        log($"{name}: pruned to {kept:N0} of {total:N0} channels ({(settings.Criterion.PrunesWhileTraining() ? "removed while training" : $"scale threshold {plan.Threshold:G3}")}); MACs {plan.MacsBefore:N0} -> {plan.MacsAfter:N0} (target {target:N0}); "
            + $"channels per layer [{string.Join(",", plan.Counts)}]");
        return plan;
    }

    /// <summary>Fine-tunes <paramref name="net"/>, holding the pruned channels at zero with <paramref name="applyMasks"/> (null: nothing to hold, the channels are gone).</summary>
    void FineTune(nn.Module<Tensor, Tensor> net, Action? applyMasks, string name)
    {
        applyMasks?.Invoke();
        // What the cut alone costs, before fine-tuning repairs it (on a fresh start only: a resumed run has moved on).
        if (TrainingCheckpoint.ReadState(Path.Combine(workDir, $"{name}-finetuned.pth")) is null)
        {
            net.eval();
            log($"{name}: test accuracy right after pruning {100 * Evaluation.Accuracy(net.forward, data.Test):F2}%");
        }
        var options = settings.Training with { Epochs = settings.FinetuneEpochs };
        // The original ResNet teaches the pruned one where asked; it stays in eval mode (no gradients, fixed BN).
        using var teacher = settings.Distill > 0 ? source.CreateModule() : null;
        using var trainer = new Trainer(net, options)
        {
            AfterStep = applyMasks,
            Distillation = teacher is null ? null : new Distillation(teacher.forward, settings.Distill),
        };
        Train(net, trainer, options, $"{name}-finetuned.pth",
            $"{name}: fine-tuning the pruned network" + (teacher is null ? "" : $" (distilled from the original, weight {settings.Distill:G3})"));
        applyMasks?.Invoke();
    }

    void Train(nn.Module<Tensor, Tensor> net, Trainer trainer, TrainOptions options, string file, string what)
    {
        string path = Path.Combine(workDir, file);
        var state = TrainingCheckpoint.ReadState(path);
        log(state is null ? $"{what}, {options.Epochs} epochs -> {path}" : $"{what}: resuming {path} after epoch {state.EpochsDone} of {options.Epochs}");
        TrainingCheckpoint.Run(net, trainer, data, options, path, resume: true, progress,
            e => log($"{what}: epoch {e.Epoch}/{e.Epochs}: loss {e.Loss:F4}, test {100 * e.TestAccuracy:F2}%, {e.ImagesPerSecond:F0} img/s"), cancellationToken);
        net.eval();
    }

    VerificationReport Compare(Func<Tensor, Tensor> reference, Func<Tensor, Tensor> candidate)
    {
        using var scope = NewDisposeScope();
        return Equivalence.Compare(reference, candidate, data.Test.Images.narrow(0, 0, Math.Min(EquivalenceImages, data.Test.Count)), 1e-4);
    }

    /// <summary>Parameters of a ResNet as deployed: conv kernels with one bias per output channel (BN folded), and the classifier.</summary>
    internal static long DeployedParameters(ResNetSpec spec) => spec.ExpectedParameters()
        .Where(p => p.Shape.Length == 4 || p.Key.StartsWith("fc.", StringComparison.Ordinal))
        .Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b) + (p.Shape.Length == 4 ? p.Shape[0] : 0));
}
