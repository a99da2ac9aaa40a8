using RMNet.Models;
using static TorchSharp.torch;

namespace RMNet.Verification;

/// <summary>Settings of an equivalence check.</summary>
/// <param name="Samples">Seeded random images to run (0: only <paramref name="UserInput"/>, which must then be given).</param>
/// <param name="InputSize">Height and width of the random images.</param>
/// <param name="Tolerance">Bound on the relative error (see <see cref="VerificationReport.MaxRelError"/>).</param>
/// <param name="Seed">Seed of the random images.</param>
/// <param name="UserInput">An extra batch [N, C, H, W] of the user's own, run as well; null for none.</param>
/// <param name="UserInputSource">The file <paramref name="UserInput"/> came from, named where it does not fit the model.</param>
/// <remarks>Checked before anything runs: a negative sample count, a size below 1, a tolerance that is not a finite positive number, or no
/// images at all raise <see cref="ArgumentOutOfRangeException"/> (an error in the calling code, as everywhere in .NET).</remarks>
public sealed record VerifyOptions(int Samples = 4, int InputSize = 224, double Tolerance = 1e-4, long Seed = 0, Tensor? UserInput = null,
    string? UserInputSource = null)
{
    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for settings no check can run with.</summary>
    internal VerifyOptions Checked()
    {
        if (Samples < 0) throw new ArgumentOutOfRangeException(nameof(Samples), Samples, "the number of seeded images cannot be negative");
        if (Samples == 0 && UserInput is null) throw new ArgumentOutOfRangeException(nameof(Samples), Samples, "no images to run: give seeded samples or a UserInput batch");
        if (InputSize < 1) throw new ArgumentOutOfRangeException(nameof(InputSize), InputSize, "the image size must be at least 1");
        if (!double.IsFinite(Tolerance) || Tolerance <= 0) throw new ArgumentOutOfRangeException(nameof(Tolerance), Tolerance, "the tolerance must be a finite positive number");
        return this;
    }
}

/// <summary>Checks a converted model against the original ResNet it came from.</summary>
public static class Verifier
{
    /// <summary>Runs the original checkpoint and <paramref name="converted"/> on the same inputs and reports the errors.</summary>
    public static VerificationReport Verify(ISourceModel original, ModelRunner converted, VerifyOptions options) =>
        Verify(original, converted, options, CancellationToken.None);

    /// <summary>
    /// Runs the original checkpoint and <paramref name="converted"/> on the same inputs and reports the errors;
    /// <paramref name="cancellationToken"/> is checked before each model runs (a runner may also stop mid-run).
    /// </summary>
    public static VerificationReport Verify(ISourceModel original, ModelRunner converted, VerifyOptions options, CancellationToken cancellationToken)
    {
        options.Checked();
        if (options.UserInput is { } user && user.shape[1] != original.InputChannels)
            throw new ModelInputException(options.UserInputSource ?? original.Source,
                $"the input batch has {user.shape[1]} channels, {original.DisplayName} takes {original.InputChannels}");
        // A flatten + fc head accepts one size only; so does a converted ONNX that declares one.
        int? convertedSize = converted.DeclaredInput is [_, _, > 0 and var h, > 0 and var w] ? (h == w ? h : -1) : null;
        if (convertedSize == -1 || convertedSize is int cs && original.FixedInputSize is int os && cs != os)
            throw new ModelInputException(original.Source, $"the converted model fixes its input to {string.Join("x", converted.DeclaredInput!.Skip(2))}, " +
                $"{original.DisplayName} takes {original.FixedInputSize?.ToString() ?? "a square input"}");
        int size = original.FixedInputSize ?? convertedSize ?? options.InputSize;
        if (options.UserInput is { } input && (input.dim() != 4 || (original.FixedInputSize ?? convertedSize) is int fixedSize && (input.shape[2] != fixedSize || input.shape[3] != fixedSize)))
            throw new ModelInputException(options.UserInputSource ?? original.Source,
                $"the input batch has shape [{string.Join(", ", input.shape)}]; the models take {size}x{size} images");
        // A batch the converted model fixes is filled: the seeded images are a whole number of its batches.
        int samples = converted.DeclaredInput is [> 0 and var b, ..] && options.Samples % b != 0 ? (options.Samples / b + 1) * b : options.Samples;
        using var module = original.CreateModule();
        var batches = new List<Tensor>();
        if (samples > 0) batches.Add(Equivalence.SeededInputs(samples, original.InputChannels, size, size, options.Seed));
        // One batch as the converted model runs it (a fixed batch of an ONNX), before Compare adds the user's batch.
        var shape = batches.FirstOrDefault()?.shape;
        if (shape is not null && converted.DeclaredInput is [> 0 and var fixedBatch, ..]) shape[0] = fixedBatch;
        return Compare(OneImageAtATime(module.forward, cancellationToken), converted.Run, batches, options, cancellationToken) with { InputShape = shape };
    }

    /// <summary>
    /// <paramref name="forward"/> image by image where a stop can be asked for: a TorchSharp forward pass cannot be
    /// interrupted, so a stop then waits for one image's pass (a fraction of a second for a ResNet-152), not a batch's.
    /// </summary>
    internal static Func<Tensor, Tensor> OneImageAtATime(Func<Tensor, Tensor> forward, CancellationToken cancellationToken) =>
        !cancellationToken.CanBeCanceled ? forward : x =>
        {
            if (x.shape[0] == 1) return forward(x);
            var outputs = new List<Tensor>();
            for (long i = 0; i < x.shape[0]; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                outputs.Add(forward(x[TensorIndex.Slice(i, i + 1)]));
            }
            return cat(outputs, 0);
        };

    /// <summary>
    /// Runs two ONNX models in ONNX Runtime on seeded inputs of the original's own input shape: fixed dimensions
    /// as declared, a dynamic batch as <see cref="VerifyOptions.Samples"/> and dynamic sizes as
    /// <see cref="VerifyOptions.InputSize"/>. A fixed batch is filled with as many batches as the samples need.
    /// </summary>
    public static VerificationReport Verify(string originalOnnx, string convertedOnnx, VerifyOptions options) =>
        Verify(originalOnnx, convertedOnnx, options, CancellationToken.None);

    /// <summary>
    /// Runs two ONNX models in ONNX Runtime on seeded inputs of the original's own input shape: fixed dimensions
    /// as declared, a dynamic batch as <see cref="VerifyOptions.Samples"/> and dynamic sizes as
    /// <see cref="VerifyOptions.InputSize"/>. A fixed batch is filled with as many batches as the samples need.
    /// A cancelled <paramref name="cancellationToken"/> stops ONNX Runtime mid-run.
    /// </summary>
    public static VerificationReport Verify(string originalOnnx, string convertedOnnx, VerifyOptions options, CancellationToken cancellationToken)
    {
        options.Checked();
        using var b = new Onnx.OnnxRuntimeRunner(convertedOnnx, cancellationToken: cancellationToken);
        return Verify(originalOnnx, x => b.Run(x, cancellationToken), options, cancellationToken);
    }

    /// <summary>
    /// An ONNX original in ONNX Runtime against <paramref name="converted"/> (a plain model's TorchSharp module, where the graph
    /// engine wrote a <c>.safetensors</c> or <c>.pth</c>), on seeded inputs of the original's own input shape.
    /// </summary>
    internal static VerificationReport Verify(string originalOnnx, ModelRunner converted, VerifyOptions options, CancellationToken cancellationToken) =>
        Verify(originalOnnx, OneImageAtATime(converted.Run, cancellationToken), options.Checked(), cancellationToken);

    static VerificationReport Verify(string originalOnnx, Func<Tensor, Tensor> converted, VerifyOptions options, CancellationToken cancellationToken)
    {
        using var a = new Onnx.OnnxRuntimeRunner(originalOnnx, cancellationToken: cancellationToken);
        var dims = a.InputShape;
        if (dims.Length == 0) throw new ModelInputException(originalOnnx, "the model's input has no shape");
        int batch = dims[0] > 0 ? dims[0] : options.Samples;
        // A dynamic channel dimension is what the first conv takes (or the user's batch has), not an assumed 3.
        int Channels() => options.UserInput is { } user ? (int)user.shape[1] : FirstConvInputChannels(originalOnnx);
        var shape = dims.Select((d, i) => i == 0 ? batch : d > 0 ? d : (dims.Length == 4 && i == 1 ? Channels() : options.InputSize)).Select(d => (long)d).ToArray();
        if (options.UserInput is { } user && !FitsFixed(user.shape, dims))
            throw new ModelInputException(options.UserInputSource ?? originalOnnx, $"the input batch has shape [{string.Join(", ", user.shape)}], the model fixes [{string.Join(", ", dims.Select(d => d > 0 ? d.ToString() : "?"))}]");
        var batches = new List<Tensor>();
        for (int done = 0, k = 0; done < options.Samples; done += batch, k++)
            batches.Add(randn(shape, generator: new Generator((ulong)(options.Seed + k))));
        bool seeded = batches.Count > 0;
        return Compare(x => a.Run(x, cancellationToken), converted, batches, options, cancellationToken)
            with { InputShape = seeded ? shape : null };
    }

    static bool FitsFixed(long[] shape, int[] declared) =>
        shape.Length == declared.Length && shape.Zip(declared).All(p => p.Second <= 0 || p.First == p.Second);

    /// <summary>
    /// Input channels of the first Conv in the graph (its constant weight's second dimension times its groups): what an image
    /// input with a dynamic channel dimension must have. Reads the graph only, not external data.
    /// </summary>
    static int FirstConvInputChannels(string onnx)
    {
        // The graph index already knows initializers and Constant values alike.
        var g = new RMNet.Onnx.OnnxGraph(RMNet.Onnx.OnnxModelFile.LoadStructure(onnx).Graph, onnx);
        foreach (var node in g.Graph.Node.Where(n => n.OpType == "Conv" && n.Input.Count > 1))
        {
            if (!g.Initializers.TryGetValue(node.Input[1], out var weight) || weight.Dims.Count != 4) continue;
            long groups = node.Attribute.FirstOrDefault(a => a.Name == "group")?.I ?? 1;
            return checked((int)(weight.Dims[1] * Math.Max(1, groups)));
        }
        throw new ModelInputException(onnx, "the input's channel dimension is dynamic and no Conv with a constant weight tells it; pass --input with a batch of your own");
    }

    static VerificationReport Compare(Func<Tensor, Tensor> original, Func<Tensor, Tensor> converted, List<Tensor> batches, VerifyOptions options,
        CancellationToken cancellationToken)
    {
        int seeded = batches.Sum(b => (int)b.shape[0]);
        if (options.UserInput is not null) batches.Add(options.UserInput);
        if (batches.Count == 0) throw new ArgumentException("nothing to verify: no seeded samples and no user input", nameof(options));
        Func<Tensor, Tensor> Checked(Func<Tensor, Tensor> run) => x =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            return run(x);
        };
        var reports = batches.Select(x => Equivalence.Compare(Checked(original), Checked(converted), x, options.Tolerance)).ToList();
        return Combine(reports, options.Tolerance) with
        {
            SeededSamples = seeded,
            UserInput = options.UserInput is null ? null : reports[^1],
        };
    }

    /// <summary>Several batches' reports as one: errors maximised (a NaN kept), agreement weighted by images, non-finite outputs summed.</summary>
    static VerificationReport Combine(List<VerificationReport> reports, double tolerance)
    {
        int n = reports.Sum(r => r.Samples);
        return new VerificationReport(n, reports.Select(r => r.MaxAbsError).Aggregate(Math.Max), reports.Select(r => r.MaxRelError).Aggregate(Math.Max),
            reports.Sum(r => r.Top1Agreement * r.Samples) / n, tolerance, NonFinite: NonFiniteOutputs.Sum(reports.Select(r => r.NonFinite)))
        {
            OutputMismatch = reports.Select(r => r.OutputMismatch).FirstOrDefault(m => m is not null),
        };
    }
}
