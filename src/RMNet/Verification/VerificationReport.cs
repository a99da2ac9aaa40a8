namespace RMNet.Verification;

/// <summary>How closely a converted network reproduces the original on the same inputs.</summary>
/// <param name="Samples">Number of images compared.</param>
/// <param name="MaxAbsError">max |converted - original| over all outputs.</param>
/// <param name="MaxRelError">max over images of max|converted - original| / max|original| (per-image scale, so
/// near-zero logits do not inflate it).</param>
/// <param name="Top1Agreement">Fraction of images whose argmax agrees.</param>
/// <param name="Tolerance">The bound <see cref="MaxRelError"/> is held to.</param>
/// <param name="InputShape">The shape of one batch of seeded images [N, C, H, W] (where the verifier chose it).</param>
/// <param name="SeededSamples">How many of <paramref name="Samples"/> were seeded images (the rest came from the user's input).</param>
public sealed record VerificationReport(int Samples, double MaxAbsError, double MaxRelError, double Top1Agreement, double Tolerance,
    long[]? InputShape = null, int? SeededSamples = null)
{
    /// <summary>True where the relative error is within the tolerance and is a number.</summary>
    public bool Passed => MaxRelError <= Tolerance && !double.IsNaN(MaxRelError);
}
