using static TorchSharp.torch;

namespace RMNet.Models;

/// <summary>Sanity checks on weights before they are converted: finite values, positive BN variances.</summary>
internal static class WeightChecks
{
    /// <summary>
    /// Throws <see cref="ModelInputException"/> naming the first tensor with NaN or infinite values in its own dtype (unless
    /// <paramref name="allowNonFinite"/>) or a BN running variance that makes var + eps non-positive.
    /// </summary>
    /// <param name="sd">The weights.</param>
    /// <param name="allowNonFinite">Accept NaN or infinite values.</param>
    /// <param name="bnEps">The epsilon the family converts with.</param>
    /// <param name="savedEpsHonoured">The family reads each BatchNorm's own epsilon where a whole module saved one; otherwise a
    /// saved epsilon other than <paramref name="bnEps"/> is refused, since converting with the wrong one is not exact.</param>
    public static void Check(StateDict sd, bool allowNonFinite, double bnEps = TorchvisionWeights.BatchNormEps, bool savedEpsHonoured = false)
    {
        if (!savedEpsHonoured && sd.SavedBatchNormEps.FirstOrDefault(kv => Math.Abs(kv.Value - bnEps) > 1e-12 * bnEps) is { Key: not null } other)
            throw new ModelInputException(sd.Source, $"BatchNorm '{other.Key}' was saved with eps {other.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)}; " +
                $"this family is converted with {bnEps.ToString(System.Globalization.CultureInfo.InvariantCulture)}, which would not be exact");
        foreach (var (key, t) in sd)
        {
            if (!t.is_floating_point()) continue;
            if (!allowNonFinite && !t.isfinite().all().item<bool>())
                throw new ModelInputException(sd.Source, $"tensor '{key}' holds NaN or infinite values (pass --allow-nonfinite to go on anyway)");
            if (!key.EndsWith("running_var", StringComparison.Ordinal) || t.numel() == 0) continue;
            // Read as float64 whatever the file's dtype (float16, bfloat16, float32, float64).
            double min = t.min().to_type(ScalarType.Float64).item<double>();
            if (min + bnEps <= 0)
                throw new ModelInputException(sd.Source, $"BatchNorm variance '{key}' has a value <= -eps ({min}): not a valid BatchNorm");
        }
    }
}
