using System.Diagnostics;
using RMNet.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RMNet.Training;

/// <summary>
/// Trains a classifier with SGD (Nesterov momentum, weight decay) on a cosine learning-rate schedule, one epoch at
/// a time, so a caller can save and resume between epochs. Shuffling and augmentation are seeded by the run's
/// seed and the epoch number: a resumed run sees the same batches as one that never stopped.
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly nn.Module<Tensor, Tensor> _model;
    readonly TrainOptions _options;
    readonly SGD _optimizer;

    /// <summary>A trainer for <paramref name="model"/>'s parameters.</summary>
    public Trainer(nn.Module<Tensor, Tensor> model, TrainOptions options)
    {
        _model = model;
        _options = options;
        _optimizer = optim.SGD(model.parameters(), options.LearningRate, options.Momentum, 0, options.WeightDecay, nesterov: options.Momentum > 0);
    }

    /// <summary>An extra loss term computed each step (e.g. the L1 sparsity penalty on channel scales); null for none.</summary>
    internal Func<Tensor>? Penalty { get; init; }

    /// <summary>A teacher whose softened outputs the model also learns from; null for plain cross-entropy.</summary>
    internal Distillation? Distillation { get; init; }

    /// <summary>Run after every optimiser step (e.g. to keep pruned channels at zero); null for none.</summary>
    internal Action? AfterStep { get; init; }

    /// <summary>
    /// Trains epoch <paramref name="epoch"/> (0-based) on <paramref name="train"/> and measures accuracy on <paramref name="test"/>.
    /// <paramref name="cancellationToken"/> is checked before every step and test batch; a cancelled epoch is simply not
    /// finished (the caller saves only finished ones).
    /// </summary>
    public EpochResult RunEpoch(int epoch, LabeledImages train, LabeledImages test, IProgress<ProgressStep>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        int steps = _options.StepsPerEpoch(train.Count);
        var generator = new Generator((ulong)(_options.Seed * 1000 + epoch + 1));
        using var order = randperm(train.Count, generator: generator);
        _model.train();
        double lossSum = 0;
        long correct = 0, seen = 0;
        for (int step = 0; step < steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            SetLearningRate(epoch * steps + step, _options.Epochs * steps);
            int n = Math.Min(_options.BatchSize, train.Count - step * _options.BatchSize);
            var index = order.narrow(0, step * _options.BatchSize, n);
            var images = train.Images.index_select(0, index);
            if (_options.Augment) images = Augmentation.ShiftAndFlip(images, 2, generator);
            var labels = train.Labels.index_select(0, index);
            _optimizer.zero_grad();
            var logits = _model.forward(images);
            var loss = Distillation is null ? nn.functional.cross_entropy(logits, labels) : Distillation.Loss(logits, images, labels);
            if (Penalty is not null) loss = loss + Penalty();
            loss.backward();
            _optimizer.step();
            AfterStep?.Invoke();
            lossSum += loss.item<float>() * n;
            correct += logits.argmax(1).eq(labels).sum().item<long>();
            seen += n;
            progress?.Report(new ProgressStep($"epoch {epoch + 1}/{_options.Epochs} loss {lossSum / seen:F3} acc {100.0 * correct / seen:F1}%"
                + $" {seen / clock.Elapsed.TotalSeconds:F0} img/s", step + 1, steps));
        }
        double trainSeconds = clock.Elapsed.TotalSeconds;
        _model.eval();
        double testAccuracy = Evaluation.Accuracy(_model.forward, test, cancellationToken: cancellationToken);
        return new EpochResult(epoch + 1, _options.Epochs, lossSum / seen, (double)correct / seen, testAccuracy, seen / trainSeconds, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Saves the optimiser's momentum buffers (TorchSharp's format), for a resume.</summary>
    public void SaveState(string path) => _optimizer.save_state_dict(path);

    /// <summary>Restores momentum buffers saved by <see cref="SaveState"/>.</summary>
    public void LoadState(string path) => _optimizer.load_state_dict(path);

    void SetLearningRate(long iteration, long total)
    {
        double lr = _options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * iteration / total));
        foreach (var group in _optimizer.ParamGroups) group.LearningRate = lr;
    }

    /// <inheritdoc />
    public void Dispose() => _optimizer.Dispose();
}
