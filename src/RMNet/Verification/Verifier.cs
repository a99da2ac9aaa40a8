using RMNet.Models;
using static TorchSharp.torch;

namespace RMNet.Verification;

/// <summary>Settings of an equivalence check.</summary>
/// <param name="Samples">Seeded random images to run.</param>
/// <param name="InputSize">Height and width of the random images.</param>
/// <param name="Tolerance">Bound on the relative error (see <see cref="VerificationReport.MaxRelError"/>).</param>
/// <param name="Seed">Seed of the random images.</param>
/// <param name="UserInput">An extra batch [N, C, H, W] of the user's own, run as well; null for none.</param>
public sealed record VerifyOptions(int Samples = 4, int InputSize = 224, double Tolerance = 1e-4, long Seed = 0, Tensor? UserInput = null);

/// <summary>Checks a converted model against the original ResNet it came from.</summary>
public static class Verifier
{
    /// <summary>Runs the original checkpoint and <paramref name="converted"/> on the same inputs and reports the errors.</summary>
    public static VerificationReport Verify(ISourceModel original, ModelRunner converted, VerifyOptions options)
    {
        if (options.UserInput is { } user && user.shape[1] != original.InputChannels)
            throw new ModelInputException(original.Source, $"the input batch has {user.shape[1]} channels, {original.DisplayName} takes {original.InputChannels}");
        using var module = original.CreateModule();
        int size = original.FixedInputSize ?? options.InputSize;   // a flatten + fc head accepts one size only
        var batches = new List<Tensor> { Equivalence.SeededInputs(options.Samples, original.InputChannels, size, size, options.Seed) };
        return Compare(module.forward, converted.Run, batches, options) with { InputShape = batches[0].shape };
    }

    /// <summary>
    /// Runs two ONNX models in ONNX Runtime on seeded inputs of the original's own input shape: fixed dimensions
    /// as declared, a dynamic batch as <see cref="VerifyOptions.Samples"/> and dynamic sizes as
    /// <see cref="VerifyOptions.InputSize"/>. A fixed batch is filled with as many batches as the samples need.
    /// </summary>
    public static VerificationReport Verify(string originalOnnx, string convertedOnnx, VerifyOptions options)
    {
        using var a = new Onnx.OnnxRuntimeRunner(originalOnnx);
        using var b = new Onnx.OnnxRuntimeRunner(convertedOnnx);
        var dims = a.InputShape;
        if (dims.Length == 0) throw new ModelInputException(originalOnnx, "the model's input has no shape");
        int batch = dims[0] > 0 ? dims[0] : options.Samples;
        var shape = dims.Select((d, i) => i == 0 ? batch : d > 0 ? d : (dims.Length == 4 && i == 1 ? 3 : options.InputSize)).Select(d => (long)d).ToArray();
        if (options.UserInput is { } user && !FitsFixed(user.shape, dims))
            throw new ModelInputException(originalOnnx, $"the input batch has shape [{string.Join(", ", user.shape)}], the model fixes [{string.Join(", ", dims.Select(d => d > 0 ? d.ToString() : "?"))}]");
        var batches = new List<Tensor>();
        for (int done = 0, k = 0; done < options.Samples; done += batch, k++)
            batches.Add(randn(shape, generator: new Generator((ulong)(options.Seed + k))));
        return Compare(a.Run, b.Run, batches, options) with { InputShape = shape };
    }

    static bool FitsFixed(long[] shape, int[] declared) =>
        shape.Length == declared.Length && shape.Zip(declared).All(p => p.Second <= 0 || p.First == p.Second);

    static VerificationReport Compare(Func<Tensor, Tensor> original, Func<Tensor, Tensor> converted, List<Tensor> batches, VerifyOptions options)
    {
        int seeded = batches.Sum(b => (int)b.shape[0]);
        if (options.UserInput is not null) batches.Add(options.UserInput);
        var reports = batches.Select(x => Equivalence.Compare(original, converted, x, options.Tolerance)).ToList();
        int n = reports.Sum(r => r.Samples);
        return new VerificationReport(n, reports.Max(r => r.MaxAbsError), reports.Max(r => r.MaxRelError),
            reports.Sum(r => r.Top1Agreement * r.Samples) / n, options.Tolerance, SeededSamples: seeded);
    }
}
