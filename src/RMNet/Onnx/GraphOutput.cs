using Onnx;
using RMNet.IO;
using RMNet.Verification;

namespace RMNet.Onnx;

/// <summary>
/// Writing and checking what the graph engine made: an <c>.onnx</c> as the graph itself, a <c>.safetensors</c> or
/// <c>.pth</c> as the plain model read back from it (<see cref="PlainGraphReader"/>), and either checked against an ONNX
/// original (an ONNX input, or a checkpoint's lowered graph) in ONNX Runtime, the plain files run in TorchSharp.
/// </summary>
internal static class GraphOutput
{
    /// <summary>Writes <paramref name="converted"/> to <paramref name="path"/> in the format its extension names.</summary>
    public static void Write(ModelProto converted, string path, string source, string docString, CancellationToken cancellationToken)
    {
        if (FileFormats.FromExtension(path) == FileFormat.Onnx)
        {
            OnnxModelFile.Save(converted, path, cancellationToken: cancellationToken);
            return;
        }
        using var plain = PlainGraphReader.Read(converted, source);
        ModelWriter.Save(plain, path, docString, cancellationToken: cancellationToken);
    }

    /// <summary>The written file at <paramref name="path"/> against the ONNX original at <paramref name="originalOnnx"/>.</summary>
    public static VerificationReport Verify(string originalOnnx, string path, VerifyOptions options, CancellationToken cancellationToken)
    {
        if (FileFormats.Detect(path) == FileFormat.Onnx) return Verifier.Verify(originalOnnx, path, options, cancellationToken);
        using var written = PlainModelFile.Load(path);
        using var runner = ModelRunner.ForModule(written.ToModule());
        return Verifier.Verify(originalOnnx, runner, options, cancellationToken);
    }
}
