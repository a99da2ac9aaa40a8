using System.Collections;
using RMNet.Plain;

namespace RMNet.IO;

/// <summary>Saves plain models as safetensors (weights + architecture) or PyTorch state dicts, and loads them back.</summary>
internal static class PlainModelFile
{
    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="path"/> atomically, its architecture JSON inside: as safetensors
    /// (<c>.safetensors</c>, JSON in the metadata) or as a <c>torch.save</c> file (<c>.pth</c>/<c>.pt</c>: a dict of
    /// the JSON under <see cref="PlainArchitecture.MetadataKey"/> and the tensors under <c>state_dict</c>, which
    /// <c>torch.load(weights_only=True)</c> reads and tools/pytorch/load_plain.py builds a module from).
    /// <paramref name="cancellationToken"/> stops it before the next tensor (safetensors) or the next write of the
    /// pickle (the state dict is pickled in one piece).
    /// </summary>
    public static void Save(PlainModel model, string path, OutputDtype dtype = OutputDtype.Float32, CancellationToken cancellationToken = default)
    {
        // Weights are float32 in memory; float16 ones are rounded here, once, as the file is written.
        var tensors = PlainArchitecture.Tensors(model).Select(t => (t.Name, dtype == OutputDtype.Float32 ? t.Tensor : t.Tensor.to_type(dtype.ScalarType()))).ToList();
        switch (FileFormats.FromExtension(path))
        {
            case FileFormat.Safetensors:
                var meta = new Dictionary<string, string>
                {
                    ["format"] = "pt",
                    [PlainArchitecture.MetadataKey] = PlainArchitecture.ToJson(model),
                };
                AtomicFile.Write(path, s => SafetensorsFile.Write(s, tensors, meta, cancellationToken), cancellationToken: cancellationToken);
                break;
            case FileFormat.TorchZip:
                StateDictFile.Save(path, tensors, new Dictionary<string, string>
                {
                    [PlainArchitecture.MetadataKey] = PlainArchitecture.ToJson(model),
                }, cancellationToken);
                break;
            default:
                throw new ModelInputException(path, "plain models are saved as .safetensors or .pth");
        }
    }

    /// <summary>Loads a plain model saved by <see cref="Save"/> (.safetensors or .pth).</summary>
    public static PlainModel Load(string path)
    {
        if (Architecture(path) is not string json)
            throw new ModelInputException(path, $"no '{PlainArchitecture.MetadataKey}' inside: not a plain model written by rmnet (.safetensors or .pth)");
        // The model keeps the tensors it was given: the state dict is not disposed here.
        var sd = CheckpointReader.Read(path);
        return PlainArchitecture.FromJson(json, sd, path);
    }

    /// <summary>True where <paramref name="path"/> is a .safetensors or .pth file carrying an rmnet plain architecture.</summary>
    public static bool IsPlain(string path) => Architecture(path) is not null;

    /// <summary>The architecture JSON inside a plain .safetensors (metadata) or .pth (top-level string), else null.</summary>
    static string? Architecture(string path) => FileFormats.Detect(path) switch
    {
        FileFormat.Safetensors => SafetensorsFile.ReadMetadata(path).GetValueOrDefault(PlainArchitecture.MetadataKey),
        FileFormat.TorchZip => CheckpointReader.ReadStrings(path).GetValueOrDefault(PlainArchitecture.MetadataKey),
        _ => null,
    };
}
