using static TorchSharp.torch;

namespace RMNet.Weights;

/// <summary>
/// ECA's gate (a 1-d conv of odd kernel k across the C channels of the pooled mean m, zero-padded by k/2, no bias, then a
/// sigmoid) as the two 1x1 convs of an SE gate, exactly: the 1-d conv is the banded C x C matrix W with
/// W[i, j] = w[j - i + k/2], and W m = relu(W m) - relu(-W m), so fc1 = [W; -W], ReLU, fc2 = [I, -I] (no biases).
/// </summary>
internal static class ChannelConvGate
{
    /// <summary>fc1 [2C, C, 1, 1] and fc2 [C, 2C, 1, 1] (float64) for the 1-d kernel <paramref name="kernel"/> (k values, k odd).</summary>
    public static (Tensor Fc1, Tensor Fc2) AsSqueezeExcite(Tensor kernel, long channels)
    {
        var w = kernel.to_type(ScalarType.Float64).flatten();
        long k = w.shape[0], pad = k / 2;
        if (k % 2 == 0) throw new ArgumentException($"an even kernel ({k}); ECA's is odd");
        var values = w.data<double>().ToArray();
        var band = new double[channels * channels];
        for (long i = 0; i < channels; i++)
            for (long t = 0; t < k; t++)
            {
                long j = i + t - pad;
                if (j >= 0 && j < channels) band[i * channels + j] = values[t];
            }
        var matrix = tensor(band, new[] { channels, channels }, ScalarType.Float64);
        var identity = eye(channels, dtype: ScalarType.Float64);
        return (cat(new[] { matrix, -matrix }, 0).reshape(2 * channels, channels, 1, 1), cat(new[] { identity, -identity }, 1).reshape(channels, 2 * channels, 1, 1));
    }
}
