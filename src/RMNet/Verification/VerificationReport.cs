namespace RMNet.Verification;

/// <summary>How closely a converted network reproduces the original on the same inputs.</summary>
/// <param name="Samples">Number of images compared.</param>
/// <param name="MaxAbsError">max |converted - original| over the outputs that are finite in both.</param>
/// <param name="MaxRelError">max over images of max|converted - original| / max|original| (per-image scale, so
/// near-zero logits do not inflate it), over the outputs that are finite in both.</param>
/// <param name="Top1Agreement">Fraction of images whose argmax agrees.</param>
/// <param name="Tolerance">The bound <see cref="MaxRelError"/> is held to.</param>
/// <param name="InputShape">The shape of one batch of seeded images [N, C, H, W] (where the verifier chose it).</param>
/// <param name="SeededSamples">How many of <paramref name="Samples"/> were seeded images (the rest came from the user's input).</param>
/// <param name="NonFinite">NaN or infinite outputs that the two models do not share exactly, or any NaN; null where there are none.</param>
/// <param name="UserInput">The same measures on the user's images alone, where there were some.</param>
public sealed record VerificationReport(int Samples, double MaxAbsError, double MaxRelError, double Top1Agreement, double Tolerance,
    long[]? InputShape = null, int? SeededSamples = null, NonFiniteOutputs? NonFinite = null, VerificationReport? UserInput = null)
{
    /// <summary>
    /// Where the two models' outputs have different shapes (not the same network), e.g. "original [2, 10], converted [2, 1000]";
    /// the errors are then infinite and the check fails.
    /// </summary>
    public string? OutputMismatch { get; init; }

    /// <summary>True where every output is finite (or the same infinity in both), and the relative error is within the tolerance.</summary>
    public bool Passed => OutputMismatch is null && NonFinite is null && MaxRelError <= Tolerance && !double.IsNaN(MaxRelError);
}

/// <summary>
/// Counts of NaN and infinite outputs, in verifications where they make the models differ: a NaN anywhere, or an
/// infinity the other model does not give at the same place.
/// </summary>
public sealed record NonFiniteOutputs(long OriginalNaN, long OriginalInfinite, long ConvertedNaN, long ConvertedInfinite, int Images)
{
    /// <summary>The counts of several batches together; null where none had any.</summary>
    internal static NonFiniteOutputs? Sum(IEnumerable<NonFiniteOutputs?> parts)
    {
        var present = parts.OfType<NonFiniteOutputs>().ToList();
        return present.Count == 0 ? null : new NonFiniteOutputs(present.Sum(p => p.OriginalNaN), present.Sum(p => p.OriginalInfinite),
            present.Sum(p => p.ConvertedNaN), present.Sum(p => p.ConvertedInfinite), present.Sum(p => p.Images));
    }

    /// <summary>E.g. "non-finite outputs in 1 of 5 images (original: 3 NaN; converted: 3 NaN)".</summary>
    internal string Describe(int samples) =>
        $"non-finite outputs in {Images} of {samples} images (original: {Counts(OriginalNaN, OriginalInfinite)}; converted: {Counts(ConvertedNaN, ConvertedInfinite)})";

    static string Counts(long nan, long infinite) => (nan, infinite) switch
    {
        (0, 0) => "all finite",
        (_, 0) => $"{nan} NaN",
        (0, _) => $"{infinite} infinite",
        _ => $"{nan} NaN, {infinite} infinite",
    };
}
