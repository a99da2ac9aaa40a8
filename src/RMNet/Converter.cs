using RMNet.IO;
using RMNet.Models;
using RMNet.Rm;
using RMNet.Verification;

namespace RMNet;

/// <summary>Settings of <see cref="Converter.Convert"/>; every one has the CLI's default.</summary>
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
/// <param name="Architecture">The layout converted, e.g. <c>resnet50</c>.</param>
/// <param name="Verification">The check of the written file against the original.</param>
public sealed record ConversionResult(string Output, string Architecture, VerificationReport Verification)
{
    /// <summary>True when the written file computes the original's function within the tolerance.</summary>
    public bool Equivalent => Verification.Passed;
}

/// <summary>
/// The front door for the common job: a trained checkpoint in, an equivalent plain network (no residual
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
    /// Loads <paramref name="checkpoint"/> (any supported family and format: PyTorch state dicts, training
    /// checkpoints, TorchScript, safetensors), removes its residual connections, writes the plain network to
    /// <paramref name="output"/> (format by extension, written atomically) and runs the written file against the
    /// original on seeded images (ONNX Runtime for <c>.onnx</c>). Unlike <c>rmnet convert --verify</c>, the file
    /// is kept whatever the check finds: see <see cref="ConversionResult.Equivalent"/>.
    /// </summary>
    /// <exception cref="ModelInputException">The checkpoint or the output path does not fit.</exception>
    /// <exception cref="RmException">The model cannot be transformed exactly.</exception>
    public static ConversionResult Convert(string checkpoint, string output, ConvertOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        options ??= new ConvertOptions();
        using var original = SourceModels.Load(checkpoint, options.Architecture, options.NumClasses);
        var plain = original.ToPlain(options.Mode, cancellationToken: cancellationToken);
        ModelWriter.Save(plain, output, dtype: options.Dtype, cancellationToken: cancellationToken);
        var verify = options.Verify ?? new VerifyOptions(Tolerance: options.Dtype == OutputDtype.Float16 ? 1e-2 : 1e-4);
        using var runner = ModelRunner.OpenConverted(output, original, cancellationToken);
        return new ConversionResult(output, original.DisplayName, Verifier.Verify(original, runner, verify, cancellationToken));
    }
}
