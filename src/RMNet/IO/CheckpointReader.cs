using System.Collections;
using System.IO.Compression;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace RMNet.IO;

/// <summary>
/// Reads PyTorch checkpoints (<c>torch.save</c> zip archives, through TorchSharp.PyBridge) and safetensors into a
/// <see cref="StateDict"/>. Training checkpoints are unwrapped: the weights are looked for under
/// <c>state_dict</c>, <c>model</c>, <c>model_state_dict</c>, <c>net</c> or <c>module</c>, and a DataParallel
/// <c>module.</c> prefix is removed.
/// </summary>
public static class CheckpointReader
{
    static readonly string[] WrapperKeys = { "state_dict", "model", "model_state_dict", "net", "module" };

    /// <summary>Reads the weights of <paramref name="path"/>; bad files raise <see cref="ModelInputException"/>.</summary>
    public static StateDict Read(string path)
    {
        var format = FileFormats.Detect(path);
        try
        {
            return format switch
            {
                FileFormat.TorchZip => FromTorchZip(path),
                FileFormat.Safetensors => FromSafetensors(path),
                FileFormat.TorchLegacy => throw new ModelInputException(path, "saved in PyTorch's legacy (pre-1.6) format; re-save it with torch.save in a current PyTorch"),
                FileFormat.Onnx => throw new ModelInputException(path, "is an ONNX model; this command reads PyTorch checkpoints and safetensors"),
                _ => throw new ModelInputException(path, "not a PyTorch checkpoint (.pth zip) or safetensors file"),
            };
        }
        catch (ModelInputException) { throw; }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ModelInputException(path, $"cannot read {Describe(format)}: {e.Message}", e);
        }
    }

    static string Describe(FileFormat f) => f == FileFormat.Safetensors ? "safetensors file" : "PyTorch checkpoint";

    static StateDict FromSafetensors(string path)
    {
        SafetensorsFile.CheckHeader(path);
        var sd = new StateDict(path);
        foreach (var (key, tensor) in Safetensors.LoadStateDict(path))
            sd.Add(key, tensor);
        return sd;
    }

    static StateDict FromTorchZip(string path)
    {
        CheckPickle(path);
        using var stream = File.OpenRead(path);
        var root = PyTorchUnpickler.UnpickleStateDict(stream);
        var table = Unwrap(root, path);
        var sd = new StateDict(path);
        var keys = table.Keys.Cast<object>().Select(k => k.ToString()!).ToList();
        bool dataParallel = keys.Count > 0 && keys.All(k => k.StartsWith("module.", StringComparison.Ordinal));
        foreach (var key in keys)
        {
            if (table[key] is not Tensor t)
                throw new ModelInputException(path, $"entry '{key}' is not a tensor");
            sd.Add(dataParallel ? key["module.".Length..] : key, t);
        }
        if (sd.Count == 0) throw new ModelInputException(path, "the checkpoint holds no tensors");
        // The unpickler's byte buffers (as large as the checkpoint) are garbage now: free them before conversion.
        GC.Collect();
        return sd;
    }

    /// <summary>Scans data.pkl (globals, storage sizes) before anything is unpickled; see <see cref="PickleScanner"/>.</summary>
    static void CheckPickle(string path)
    {
        using var zip = new ZipArchive(File.OpenRead(path), ZipArchiveMode.Read);
        var pkl = zip.Entries.Where(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal)).ToList();
        if (pkl.Count != 1) throw new ModelInputException(path, pkl.Count == 0 ? "zip archive has no data.pkl: not a torch.save file" : "zip archive has several data.pkl entries");
        if (pkl[0].Length > MaxPickleBytes) throw new ModelInputException(path, $"data.pkl is {pkl[0].Length} bytes, over the {MaxPickleBytes} byte limit");
        var bytes = new byte[pkl[0].Length];
        using (var s = pkl[0].Open()) s.ReadExactly(bytes);
        string prefix = pkl[0].FullName[..^"data.pkl".Length];
        var sizes = zip.Entries.Where(e => e.FullName.StartsWith(prefix + "data/", StringComparison.Ordinal))
            .ToDictionary(e => e.FullName[(prefix.Length + 5)..], e => e.Length);
        PickleScanner.Check(bytes, key => sizes.TryGetValue(key, out var n) ? n : null, path);
    }

    const long MaxPickleBytes = 64L << 20;

    static IDictionary Unwrap(IDictionary table, string path)
    {
        for (int depth = 0; depth < 4; depth++)
        {
            var values = table.Values.Cast<object?>().ToList();
            if (values.Count > 0 && values.All(v => v is Tensor)) return table;
            var inner = WrapperKeys.Select(k => table.Contains(k) ? table[k] : null).OfType<IDictionary>().FirstOrDefault();
            if (inner is null)
            {
                string keys = string.Join(", ", table.Keys.Cast<object>().Take(8));
                throw new ModelInputException(path, $"no state dict found: top-level keys are [{keys}], none of {string.Join("/", WrapperKeys)} holds tensors");
            }
            table = inner;
        }
        throw new ModelInputException(path, "checkpoint nesting too deep to find the state dict");
    }
}
