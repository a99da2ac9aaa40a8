using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Rm;
using RMNet.Verification;

namespace RMNet;

/// <summary>Settings of <see cref="Converter.Convert"/>; every one has the CLI's default. An ONNX input takes only <see cref="Mode"/> and <see cref="Verify"/>.</summary>
/// <param name="Architecture"><c>auto</c> (detected from the weights) or a layout name such as <c>resnet50</c>.</param>
/// <param name="NumClasses">Expected classifier outputs, or null to take them from the weights.</param>
/// <param name="Mode">Grouped (default) or dense middle convs, where the family has them.</param>
/// <param name="Dtype">Weight type of the written file.</param>
/// <param name="Verify">How the written file is checked against the original; null for the CLI's defaults (4 seeded
/// images at 224x224, relative tolerance 1e-4, or 1e-2 for <see cref="OutputDtype.Float16"/>).</param>
public sealed record ConvertOptions(
    string Architecture = "auto",
    int? NumClasses = null,
    RmMode Mode = RmMode.Grouped,
    OutputDtype Dtype = OutputDtype.Float32,
    VerifyOptions? Verify = null);

/// <summary>What <see cref="Converter.Convert"/> did.</summary>
/// <param name="Output">The file written.</param>
/// <param name="Architecture">The layout converted, e.g. <c>resnet50</c>; for an ONNX input, <c>ONNX graph</c> and its producer.</param>
/// <param name="Verification">The check of the written file against the original.</param>
public sealed record ConversionResult(string Output, string Architecture, VerificationReport Verification)
{
    /// <summary>True when the written file computes the original's function within the tolerance.</summary>
    public bool Equivalent => Verification.Passed;

    /// <summary>
    /// Residual joins of the input: a checkpoint's residual blocks (<see cref="ISourceModel.BlockCount"/>), or an
    /// ONNX graph's additions (<c>Add</c>/<c>Sum</c>) of paths that split from one value.
    /// </summary>
    public int ResidualJoins { get; init; }

    /// <summary>
    /// Residual joins left in the output: always 0 for a checkpoint (a block that cannot be made plain is an
    /// <see cref="RmException"/>); for an ONNX graph, the joins the passes did not recognise as residual blocks,
    /// which <c>rmnet convert --strict</c> refuses.
    /// </summary>
    public int ResidualJoinsRemaining { get; init; }
}

/// <summary>
/// The front door for the common job: a trained checkpoint or ONNX model in, an equivalent plain network (no residual
/// connections) out, written and checked. Errors are <see cref="RMNetException"/>s.
/// </summary>
/// <example>
/// <code>
/// using RMNet;
///
/// var result = Converter.Convert("resnet50.pth", "resnet50-plain.onnx");   // .onnx, .safetensors or .pth
/// Console.WriteLine($"{result.Architecture}: max rel error {result.Verification.MaxRelError:E2}");
/// return result.Equivalent ? 0 : 1;
/// </code>
/// </example>
public static class Converter
{
    /// <summary>
    /// Loads <paramref name="input"/>, removes its residual connections, writes the plain network to
    /// <paramref name="output"/> (written atomically) and runs the written file against the original on seeded
    /// images. Unlike <c>rmnet convert --verify</c>, the file is kept whatever the check finds: see
    /// <see cref="ConversionResult.Equivalent"/>.
    /// <list type="bullet">
    /// <item>A checkpoint (any supported family and format: PyTorch state dicts, training checkpoints, TorchScript,
    /// safetensors) is written in the format <paramref name="output"/>'s extension names (<c>.onnx</c>,
    /// <c>.safetensors</c>, <c>.pth</c>) and checked in ONNX Runtime for <c>.onnx</c>, in TorchSharp otherwise.</item>
    /// <item>An ONNX model (<c>.onnx</c>) is converted at the graph level, as <c>rmnet convert model.onnx -o plain.onnx
    /// --verify</c> does: the output must be <c>.onnx</c>, both models run in ONNX Runtime, and only
    /// <see cref="ConvertOptions.Mode"/> and <see cref="ConvertOptions.Verify"/> apply (a non-default architecture,
    /// class count or dtype is refused). Joins the passes do not recognise stay in the output, counted in
    /// <see cref="ConversionResult.ResidualJoinsRemaining"/>.</item>
    /// </list>
    /// </summary>
    /// <param name="input">The checkpoint or ONNX model to convert; the format is read from the file's content.</param>
    /// <param name="output">The file to write; an existing file is replaced.</param>
    /// <param name="options">Settings; null for the CLI's defaults.</param>
    /// <param name="cancellationToken">Checked while loading, converting, writing and verifying.</param>
    /// <exception cref="ModelInputException">The input or the output path does not fit, or an option does not apply to the input.</exception>
    /// <exception cref="RmException">The model cannot be transformed exactly.</exception>
    public static ConversionResult Convert(string input, string output, ConvertOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        options ??= new ConvertOptions();
        return FileFormats.Detect(input) == FileFormat.Onnx
            ? ConvertOnnx(input, output, options, cancellationToken)
            : ConvertCheckpoint(input, output, options, cancellationToken);
    }

    static ConversionResult ConvertCheckpoint(string checkpoint, string output, ConvertOptions options, CancellationToken cancellationToken)
    {
        var verify = (options.Verify ?? new VerifyOptions(Tolerance: options.Dtype.DefaultTolerance())).Checked();
        ModelWriter.CheckExtension(output);
        // Written under its final name in a private directory beside the target (never over the input), checked there, then moved into place.
        using var pending = new PendingOutput(output, overwrite: true, checkpoint);
        var sd = CheckpointReader.Read(checkpoint);
        if (Lowering.CheckpointLowerings.Find(sd) is { } lowered)
            using (lowered)
            {
                RefuseCheckpointOnlyOptions(checkpoint, options, lowered.Description);
                return ConvertGraph(checkpoint, output, pending, options, verify, cancellationToken, lowered.Lower, lowered.Description);
            }
        using var original = SourceModels.FromStateDict(sd, options.Architecture, options.NumClasses);
        using (var plain = original.ToPlain(options.Mode, cancellationToken: cancellationToken))
            ModelWriter.Save(plain, pending.TempPath, dtype: options.Dtype, cancellationToken: cancellationToken);
        VerificationReport report;
        using (var runner = ModelRunner.OpenConverted(pending.TempPath, original, cancellationToken))
            report = Verifier.Verify(original, runner, verify, cancellationToken);
        pending.Commit();
        return new ConversionResult(output, original.DisplayName, report) { ResidualJoins = original.BlockCount };
    }

    static ConversionResult ConvertOnnx(string input, string output, ConvertOptions options, CancellationToken cancellationToken)
    {
        RefuseCheckpointOnlyOptions(input, options, "an ONNX model");
        var verify = (options.Verify ?? new VerifyOptions()).Checked();
        ModelWriter.CheckExtension(output);
        using var pending = new PendingOutput(output, overwrite: true, input);
        return ConvertGraph(input, output, pending, options, verify, cancellationToken, lower: null);
    }

    /// <summary>Options the graph engine cannot honour: it keeps the graph's own layout and weight types.</summary>
    static void RefuseCheckpointOnlyOptions(string input, ConvertOptions options, string what)
    {
        var defaults = new ConvertOptions();
        if (options.Dtype != defaults.Dtype)
            throw new ModelInputException(input, $"ConvertOptions.Dtype {options.Dtype} does not apply to {what}, which keeps its own weight types");
        if (options.Architecture != defaults.Architecture)
            throw new ModelInputException(input, $"ConvertOptions.Architecture '{options.Architecture}' does not apply to {what}, whose layout is read from its graph or names");
        if (options.NumClasses is { } classes)
            throw new ModelInputException(input, $"ConvertOptions.NumClasses {classes} does not apply to {what}, whose outputs are read from its graph or weights");
    }

    /// <summary>
    /// The graph engine: an ONNX file, or a checkpoint whose family <paramref name="lower"/> builds the graph of (checked against that
    /// graph, written to a temporary file), converted by the graph passes into <paramref name="pending"/> and checked in ONNX Runtime.
    /// </summary>
    static ConversionResult ConvertGraph(string input, string output, PendingOutput pending, ConvertOptions options, VerifyOptions verify,
        CancellationToken cancellationToken, Func<global::Onnx.ModelProto>? lower, string? architecture = null)
    {
        cancellationToken.ThrowIfCancellationRequested();
        // A lowered original goes beside the output's temporary file, which Commit would move: so under another name, deleted before.
        string original = lower is null ? input : Path.Combine(Path.GetDirectoryName(pending.TempPath)!, TemporaryNames.New("original.onnx"));
        var result = lower is null   // the graph passes have no safe points
            ? OnnxConversion.Convert(input, options.Mode, verify.InputSize)
            : OnnxConversion.ConvertLowered(lower(), input, options.Mode, verify.InputSize, original);
        cancellationToken.ThrowIfCancellationRequested();
        GraphOutput.Write(result.Model, pending.TempPath, input, $"rmnet: residual connections removed (RM) from {architecture ?? "an ONNX graph"}", cancellationToken);
        var report = GraphOutput.Verify(original, pending.TempPath, verify, cancellationToken);
        if (lower is not null) File.Delete(original);
        pending.Commit();
        string producer = result.Input?.Producer is { Length: > 0 } p ? $" by {p}" : "";
        return new ConversionResult(output, architecture ?? "ONNX graph" + producer, report)
        {
            ResidualJoins = result.JoinsFound,
            ResidualJoinsRemaining = result.JoinsRemaining,
        };
    }
}
