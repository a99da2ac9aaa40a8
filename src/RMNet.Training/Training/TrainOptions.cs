namespace RMNet.Training;

/// <summary>Settings of a training run (SGD with momentum, cosine learning rate, cross-entropy).</summary>
/// <param name="Epochs">Epochs in the whole run (the cosine schedule spans them all, also across a resume).</param>
/// <param name="BatchSize">Images per step.</param>
/// <param name="LearningRate">Peak learning rate.</param>
/// <param name="Momentum">SGD momentum (Nesterov).</param>
/// <param name="WeightDecay">L2 penalty on every parameter.</param>
/// <param name="Seed">Seeds initialisation, shuffling and augmentation, so a run repeats exactly.</param>
/// <param name="Augment">Random 2-pixel shifts and horizontal flips of the training images.</param>
/// <param name="TrainLimit">Train on this many images only (a seeded subset), or all where null.</param>
/// <param name="TestLimit">Measure accuracy on this many test images only, or all where null.</param>
public sealed record TrainOptions(
    int Epochs = 10, int BatchSize = 128, double LearningRate = 0.1, double Momentum = 0.9, double WeightDecay = 5e-4,
    long Seed = 0, bool Augment = true, int? TrainLimit = null, int? TestLimit = null)
{
    /// <summary>Optimiser steps in one epoch over <paramref name="images"/> training images (the last batch may be short).</summary>
    internal int StepsPerEpoch(int images) => (images + BatchSize - 1) / BatchSize;
}

/// <summary>What one epoch achieved.</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="Epochs">Epochs in the run.</param>
/// <param name="Loss">Mean training loss (cross-entropy plus any penalty).</param>
/// <param name="TrainAccuracy">Top-1 accuracy on the (augmented) training batches, 0..1.</param>
/// <param name="TestAccuracy">Top-1 accuracy on the test split, 0..1.</param>
/// <param name="ImagesPerSecond">Training throughput.</param>
/// <param name="Seconds">Wall time of the epoch, evaluation included.</param>
public sealed record EpochResult(int Epoch, int Epochs, double Loss, double TrainAccuracy, double TestAccuracy, double ImagesPerSecond, double Seconds);
