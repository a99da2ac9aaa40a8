using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Verification;

/// <summary>Runs an original and a converted network on the same inputs and measures how far apart they are.</summary>
internal static class Equivalence
{
    /// <summary>Seeded standard-normal images [samples, channels, height, width] (the same for the same seed).</summary>
    public static Tensor SeededInputs(int samples, int channels, int height, int width, long seed = 0)
    {
        var generator = new Generator((ulong)seed);
        return randn(new long[] { samples, channels, height, width }, generator: generator);
    }

    /// <summary>Compares the two functions' outputs on <paramref name="inputs"/>.</summary>
    public static VerificationReport Compare(Func<Tensor, Tensor> original, Func<Tensor, Tensor> converted, Tensor inputs, double tolerance)
    {
        using var scope = NewDisposeScope();
        var a = original(inputs).to_type(ScalarType.Float64);
        var b = converted(inputs).to_type(ScalarType.Float64);
        return Measure(a, b, tolerance);
    }

    /// <summary>
    /// Measures <paramref name="actual"/> against <paramref name="reference"/> (both [N, ...]). The errors are taken over
    /// the outputs finite in both; a NaN anywhere, or an infinity not given by both at the same place, is counted in
    /// <see cref="VerificationReport.NonFinite"/> and fails the check.
    /// </summary>
    public static VerificationReport Measure(Tensor reference, Tensor actual, double tolerance)
    {
        using var scope = NewDisposeScope();
        if (!reference.shape.SequenceEqual(actual.shape))
            return new VerificationReport((int)reference.shape[0], double.PositiveInfinity, double.PositiveInfinity, 0, tolerance)
            {
                OutputMismatch = $"original [{string.Join(", ", reference.shape)}], converted [{string.Join(", ", actual.shape)}]",
            };
        var r = reference.to_type(ScalarType.Float64).flatten(1);
        var a = actual.to_type(ScalarType.Float64).flatten(1);
        var finite = r.isfinite().logical_and(a.isfinite());
        // Equal infinities agree; a NaN never equals anything, itself included.
        var disagree = finite.logical_or(r.eq(a)).logical_not();
        NonFiniteOutputs? nonFinite = disagree.any().item<bool>()
            ? new NonFiniteOutputs(Count(r.isnan()), Count(r.isinf()), Count(a.isnan()), Count(a.isinf()), (int)Count(disagree.any(1)))
            : null;
        var zero = zeros_like(r);
        var diff = where(finite, (a - r).abs(), zero);
        double maxAbs = diff.max().item<double>();
        var perImage = diff.amax(1) / where(r.isfinite(), r.abs(), zero).amax(1).clamp_min(1e-12);
        double maxRel = perImage.max().item<double>();
        double top1 = (r.argmax(1) == a.argmax(1)).to_type(ScalarType.Float64).mean().item<double>();
        return new VerificationReport((int)r.shape[0], maxAbs, maxRel, top1, tolerance, NonFinite: nonFinite);
    }

    static long Count(Tensor mask) => mask.sum().item<long>();
}
