using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RMNet.Training;

/// <summary>
/// Re-estimates the running statistics of every BatchNorm in a network from images, so that its eval-mode function
/// is the one training sees. Needed after pruning: the last channels removed change what the later BatchNorms see,
/// and their running averages lag behind by as many steps as training has taken since.
/// </summary>
internal static class BatchNormStatistics
{
    /// <summary>
    /// Forgets every BatchNorm's running mean and variance in <paramref name="network"/> and measures them again on
    /// <paramref name="images"/> (the cumulative average over batches of <paramref name="batchSize"/>, in train mode,
    /// without gradients; a last batch of a single image is left out). Weights are unchanged; the network is left in eval mode.
    /// </summary>
    /// <returns>The number of BatchNorms re-estimated.</returns>
    public static int Reestimate(nn.Module<Tensor, Tensor> network, Tensor images, int batchSize = 128)
    {
        var norms = network.modules().OfType<BatchNorm2d>().ToList();
        var momenta = norms.Select(n => n.momentum).ToList();
        using (no_grad())
        {
            foreach (var norm in norms)
            {
                norm.reset_running_stats();
                norm.momentum = null;   // null: a cumulative average, every batch weighted alike
            }
            network.train();
            long count = images.shape[0];
            for (long start = 0; start < count; start += batchSize)
            {
                long size = Math.Min(batchSize, count - start);
                if (size == 1 && count > 1) break;   // one image cannot give a variance where a map is 1x1
                using (NewDisposeScope())
                    network.forward(images.narrow(0, start, size));
            }
        }
        for (int i = 0; i < norms.Count; i++) norms[i].momentum = momenta[i];
        network.eval();
        return norms.Count;
    }
}
