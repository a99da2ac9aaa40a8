using static TorchSharp.torch;

namespace RMNet.Models;

/// <summary>Sanity checks on weights before they are converted: finite values, positive BN variances.</summary>
internal static class WeightChecks
{
    /// <summary>
    /// Throws <see cref="ModelInputException"/> naming the first tensor with NaN or infinite values in its own dtype (unless
    /// <paramref name="allowNonFinite"/>) or a BN running variance that makes var + eps non-positive.
    /// </summary>
    public static void Check(StateDict sd, bool allowNonFinite, double bnEps = TorchvisionWeights.BatchNormEps)
    {
        foreach (var (key, t) in sd)
        {
            if (!t.is_floating_point()) continue;
            if (!allowNonFinite && !t.isfinite().all().item<bool>())
                throw new ModelInputException(sd.Source, $"tensor '{key}' holds NaN or infinite values (pass --allow-nonfinite to convert anyway)");
            if (!key.EndsWith("running_var", StringComparison.Ordinal) || t.numel() == 0) continue;
            // Read as float64 whatever the file's dtype (float16, bfloat16, float32, float64).
            double min = t.min().to_type(ScalarType.Float64).item<double>();
            if (min + bnEps <= 0)
                throw new ModelInputException(sd.Source, $"BatchNorm variance '{key}' has a value <= -eps ({min}): not a valid BatchNorm");
        }
    }
}
