using System.Collections;
using RMNet.Plain;
using TorchSharp.PyBridge;

namespace RMNet.IO;

/// <summary>Saves plain models as safetensors (weights + architecture) or PyTorch state dicts, and loads them back.</summary>
public static class PlainModelFile
{
    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="path"/> as safetensors (<c>.safetensors</c>) or a PyTorch
    /// state dict (<c>.pth</c>/<c>.pt</c>) that <c>torch.load</c> reads; atomically. <paramref name="cancellationToken"/>
    /// stops it before the next tensor (safetensors) or before it starts (the state dict is pickled in one piece).
    /// </summary>
    public static void Save(PlainModel model, string path, CancellationToken cancellationToken = default)
    {
        switch (FileFormats.FromExtension(path))
        {
            case FileFormat.Safetensors:
                var meta = new Dictionary<string, string>
                {
                    ["format"] = "pt",
                    [PlainArchitecture.MetadataKey] = PlainArchitecture.ToJson(model),
                };
                AtomicFile.Write(path, s => SafetensorsFile.Write(s, PlainArchitecture.Tensors(model), meta, cancellationToken));
                break;
            case FileFormat.TorchZip:
                cancellationToken.ThrowIfCancellationRequested();
                StateDictFile.Save(path, PlainArchitecture.Tensors(model));
                break;
            default:
                throw new ModelInputException(path, "plain models are saved as .safetensors or .pth");
        }
    }

    /// <summary>Loads a plain model saved as safetensors by <see cref="Save"/>.</summary>
    public static PlainModel Load(string path)
    {
        if (FileFormats.Detect(path) != FileFormat.Safetensors)
            throw new ModelInputException(path, "a plain model with its architecture is read from .safetensors written by rmnet");
        var meta = SafetensorsFile.ReadMetadata(path);
        if (!meta.TryGetValue(PlainArchitecture.MetadataKey, out var json))
            throw new ModelInputException(path, $"no '{PlainArchitecture.MetadataKey}' in the safetensors metadata: not a plain model written by rmnet");
        // The model keeps the tensors it was given: the state dict is not disposed here.
        var sd = CheckpointReader.Read(path);
        return PlainArchitecture.FromJson(json, sd, path);
    }

    /// <summary>True where <paramref name="path"/> is a safetensors file carrying an rmnet plain architecture.</summary>
    public static bool IsPlainSafetensors(string path) =>
        FileFormats.Detect(path) == FileFormat.Safetensors && SafetensorsFile.ReadMetadata(path).ContainsKey(PlainArchitecture.MetadataKey);
}
