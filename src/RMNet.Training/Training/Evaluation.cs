using RMNet.Data;
using static TorchSharp.torch;

namespace RMNet.Training;

/// <summary>Top-1 accuracy of a classifier on labelled images.</summary>
internal static class Evaluation
{
    /// <summary>
    /// The fraction of <paramref name="data"/> that <paramref name="classify"/> labels correctly, run in batches
    /// without autograd. The caller puts a module in eval mode first. <paramref name="cancellationToken"/> is checked before each batch.
    /// </summary>
    public static double Accuracy(Func<Tensor, Tensor> classify, LabeledImages data, int batchSize = 256, CancellationToken cancellationToken = default)
    {
        using var noGrad = no_grad();
        long correct = 0;
        for (int start = 0; start < data.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            int n = Math.Min(batchSize, data.Count - start);
            var logits = classify(data.Images.narrow(0, start, n));
            correct += logits.argmax(1).eq(data.Labels.narrow(0, start, n)).sum().item<long>();
        }
        return data.Count == 0 ? 0 : (double)correct / data.Count;
    }
}
