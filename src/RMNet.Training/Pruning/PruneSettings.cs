using RMNet.Training;

namespace RMNet.Pruning;

/// <summary>Settings of an RM pruning run (and of the residual-constrained comparison, which uses the same ones).</summary>
/// <param name="TargetFlops">MACs to reach, as a fraction of the original ResNet's (0.5 halves them).</param>
/// <param name="SparsityEpochs">Epochs of training with the L1 penalty on the channel scales (with the Taylor criterion: of training while pruning).</param>
/// <param name="Penalty">Weight of the L1 penalty: loss += Penalty * sum |scale|.</param>
/// <param name="FinetuneEpochs">Epochs of training of the pruned (masked) network.</param>
/// <param name="Training">Optimiser, data and seed settings; its epoch count is replaced per stage.</param>
/// <param name="MinKeepFraction">Every layer keeps at least this fraction of its channels.</param>
/// <param name="CalibrationImages">Training images the per-channel scales are initialised from.</param>
/// <param name="ChannelMultiple">Every pruned layer keeps a multiple of this many channels (1: any number); <see cref="DefaultChannelMultiple"/> by default.</param>
/// <param name="Form">Which network is trained while pruning: the gated ResNet or the plain network itself.</param>
/// <param name="Distill">Weight of distillation from the original ResNet while fine-tuning (0: labels only; see <see cref="Training.Distillation"/>).</param>
/// <param name="Criterion">How the channels to remove are chosen.</param>
/// <param name="FinetuneForm">
/// The form fine-tuning trains in. <see cref="TrainForm.Plain"/> (the default) after residual-form pruning fine-tunes
/// the pruned plain network itself (see <see cref="FinetunesCut"/>), after plain-form pruning the masked plain
/// network; <see cref="TrainForm.Residual"/> fine-tunes the masked gated ResNet and needs the residual training form.
/// </param>
/// <param name="FinetuneBranches">
/// Whether the pruned plain network is fine-tuned with RepVGG's training-time branches beside its convs
/// (<see cref="TrainingBranches"/>), folded into them at export; needs <see cref="FinetunesCut"/>.
/// </param>
/// <param name="ResidualTargetFlops">
/// The residual-constrained comparison's own MACs target, as a fraction of the original's (null: <paramref name="TargetFlops"/>).
/// A lower one compares at about equal speed, since the plain network turns MACs into throughput better (docs/pruning.md 3.13).
/// </param>
public sealed record PruneSettings(double TargetFlops, int SparsityEpochs, double Penalty, int FinetuneEpochs, TrainOptions Training,
    double MinKeepFraction = 1.0 / 16, int CalibrationImages = 1024, int ChannelMultiple = PruneSettings.DefaultChannelMultiple, TrainForm Form = TrainForm.Residual, double Distill = 0,
    PruningCriterion Criterion = PruningCriterion.Taylor, TrainForm FinetuneForm = TrainForm.Plain, bool FinetuneBranches = false,
    double? ResidualTargetFlops = null)
{
    /// <summary>The channel multiple of the library and of <c>rmnet prune</c>: conv kernels run blocks of 8 channels fastest.</summary>
    public const int DefaultChannelMultiple = 8;

    /// <summary>The residual-constrained comparison's MACs target, as a fraction of the original's.</summary>
    internal double ResidualTarget => ResidualTargetFlops ?? TargetFlops;

    /// <summary>
    /// Whether fine-tuning trains the pruned plain network (channels removed, a BatchNorm after each conv) instead of
    /// the masked gated ResNet: residual-form pruning, plain-form fine-tuning. The carried channels' Dirac kernels then
    /// become ordinary weights, as in the paper's pruning code, which fine-tunes the deployed plain network; measured
    /// 0.04-0.16 points more accurate than fine-tuning the masked gated ResNet, at about twice its images/s (docs/pruning.md 3.8).
    /// </summary>
    internal bool FinetunesCut => Form == TrainForm.Residual && FinetuneForm == TrainForm.Plain;
}

/// <summary>How RM pruning chooses the channels to remove.</summary>
public enum PruningCriterion
{
    /// <summary>
    /// Network slimming: sparsity training with an L1 penalty on the scales, then the smallest |scale| go, all at
    /// once. In residual form the penalty kills every shortcut gate (docs/pruning.md 3.4); measured worse than Taylor.
    /// </summary>
    L1,
    /// <summary>
    /// No penalty: the sparsity stage trains normally and removes channels in rounds as it goes, the least salient
    /// by first-order Taylor estimate first (<see cref="GradualTaylorPruning"/>). The default.
    /// </summary>
    Taylor,
    /// <summary>
    /// As <see cref="Taylor"/>, but each round removes the blocks of channels with the least saliency per MAC they
    /// save (<see cref="ChannelSelection.SelectPerMac"/>), so the budget goes to cheap channels first.
    /// </summary>
    TaylorPerMac,
}

/// <summary>What the pruning criteria have in common.</summary>
internal static class PruningCriterionExtensions
{
    /// <summary>True for the criteria that remove channels in rounds while training (<see cref="GradualTaylorPruning"/>).</summary>
    public static bool PrunesWhileTraining(this PruningCriterion criterion) => criterion != PruningCriterion.L1;
}

/// <summary>The form RM pruning trains in. Either way every channel of the plain network can be removed.</summary>
public enum TrainForm
{
    /// <summary>
    /// The ResNet, still residual, with a gate on every channel of its plain form (<see cref="GatedResNet"/>): the
    /// shortcut keeps gradients flowing while the gates learn which channels go. Basic-block ResNets without SE.
    /// </summary>
    Residual,
    /// <summary>The dense plain network, a BatchNorm per conv as the channel scale (<see cref="ScaledPlainNet"/>). Any ResNet.</summary>
    Plain,
}

/// <summary>One model of a pruning comparison: its accuracy and cost, where it was written, and how exactly it matches its parent.</summary>
/// <param name="Model">"original", "plain", "rm-pruned" or "residual-pruned".</param>
/// <param name="TestAccuracy">Top-1 accuracy on the test split, 0..1.</param>
/// <param name="Parameters">Weights and biases as deployed (BatchNorm folded into the convs).</param>
/// <param name="Macs">Multiply-accumulates per image at the data's size.</param>
/// <param name="File">Where the model was written, or null.</param>
/// <param name="Equivalence">The written model against the network it was made from (the masked, fine-tuned one for pruned models).</param>
public sealed record PrunedModel(string Model, double TestAccuracy, long Parameters, long Macs, string? File, Verification.VerificationReport? Equivalence);
