using RMNet.Models;
using static TorchSharp.torch;

namespace RMNet.Verification;

/// <summary>Settings of an equivalence check.</summary>
/// <param name="Samples">Seeded random images to run.</param>
/// <param name="InputSize">Height and width of the random images.</param>
/// <param name="Tolerance">Bound on the relative error (see <see cref="VerificationReport.MaxRelError"/>).</param>
/// <param name="Seed">Seed of the random images.</param>
/// <param name="UserInput">An extra batch [N, 3, H, W] of the user's own, run as well; null for none.</param>
public sealed record VerifyOptions(int Samples = 4, int InputSize = 224, double Tolerance = 1e-4, long Seed = 0, Tensor? UserInput = null);

/// <summary>Checks a converted model against the original ResNet it came from.</summary>
public static class Verifier
{
    /// <summary>Runs the original checkpoint and <paramref name="converted"/> on the same inputs and reports the errors.</summary>
    public static VerificationReport Verify(ResNetCheckpoint original, ModelRunner converted, VerifyOptions options)
    {
        using var module = original.CreateModule();
        var batches = new List<Tensor> { Equivalence.SeededInputs(options.Samples, 3, options.InputSize, options.InputSize, options.Seed) };
        if (options.UserInput is not null) batches.Add(options.UserInput);
        var reports = batches.Select(x => Equivalence.Compare(module.forward, converted.Run, x, options.Tolerance)).ToList();
        int n = reports.Sum(r => r.Samples);
        return new VerificationReport(n, reports.Max(r => r.MaxAbsError), reports.Max(r => r.MaxRelError),
            reports.Sum(r => r.Top1Agreement * r.Samples) / n, options.Tolerance);
    }
}
