using RMNet.Onnx;
using RMNet.Plain;

namespace RMNet.IO;

/// <summary>Saves a plain model in the format its file extension names: .onnx, .safetensors or .pth/.pt.</summary>
public static class ModelWriter
{
    /// <summary>The extensions <see cref="Save"/> accepts.</summary>
    public static IReadOnlyList<string> Extensions { get; } = new[] { ".onnx", ".safetensors", ".pth", ".pt" };

    /// <summary>Throws <see cref="ModelInputException"/> naming <paramref name="path"/> where its extension is none <see cref="Save"/> writes.</summary>
    public static void CheckExtension(string path)
    {
        if (FileFormats.FromExtension(path) == FileFormat.Unknown)
            throw new ModelInputException(path, $"unknown output format; use one of {string.Join(", ", Extensions)}");
    }

    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="path"/> atomically, its weights as <paramref name="dtype"/>;
    /// a cancelled write leaves nothing behind.
    /// </summary>
    public static void Save(PlainModel model, string path, string docString = "", OutputDtype dtype = OutputDtype.Float32,
        CancellationToken cancellationToken = default)
    {
        switch (FileFormats.FromExtension(path))
        {
            case FileFormat.Onnx: OnnxExporter.Save(model, path, docString, dtype: dtype, cancellationToken: cancellationToken); break;
            case FileFormat.Safetensors or FileFormat.TorchZip: PlainModelFile.Save(model, path, dtype, cancellationToken); break;
            default: CheckExtension(path); break;
        }
    }
}
