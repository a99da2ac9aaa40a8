using System.IO.Compression;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace RMNet.IO;

/// <summary>
/// Reads PyTorch checkpoints (<c>torch.save</c> zip archives of state dicts, training checkpoints or whole modules,
/// and TorchScript archives; read by <see cref="PickleReader"/>, which executes nothing) and safetensors (through
/// TorchSharp.PyBridge) into a <see cref="StateDict"/>, in the file's own dtypes. Where the weights are found is
/// <see cref="PickledWeights"/>; a wrapper's prefix shared by every name is removed (<see cref="WrapperPrefixes"/>).
/// </summary>
internal static class CheckpointReader
{
    /// <summary>
    /// Prefixes wrappers add to every name: DataParallel's <c>module.</c>, a PyTorch Lightning module's <c>model.</c>
    /// (the network as <c>self.model</c>), torch.compile's <c>_orig_mod.</c>. Removed, repeatedly, only while every
    /// name carries the same one, so a network's own names are never cut.
    /// </summary>
    public static IReadOnlyList<string> WrapperPrefixes { get; } = new[] { "module.", "model.", "_orig_mod." };

    /// <summary>The prefix (possibly several wrappers' together, e.g. <c>model._orig_mod.</c>) that every one of <paramref name="keys"/> starts with; "" where none.</summary>
    public static string SharedWrapperPrefix(IReadOnlyList<string> keys)
    {
        string prefix = "";
        while (keys.Count > 0 && WrapperPrefixes.FirstOrDefault(p => keys.All(k => k.Length > prefix.Length + p.Length
            && string.CompareOrdinal(k, prefix.Length, p, 0, p.Length) == 0)) is { } next)
            prefix += next;
        return prefix;
    }

    /// <summary>
    /// Reads the weights of <paramref name="path"/>; bad files raise <see cref="ModelInputException"/>. A training
    /// checkpoint's weights come from its top-level key <paramref name="weightsKey"/> where given (e.g. <c>state_dict_ema</c>);
    /// the key read is <see cref="StateDict.WeightsKey"/>.
    /// </summary>
    public static StateDict Read(string path, string? weightsKey = null) => Read(path, null, weightsKey);

    /// <summary>
    /// Reads the tensors of <paramref name="path"/> as <see cref="Read(string, string?)"/> does, and also a file that holds one
    /// bare tensor (<c>torch.save(x, 'x.pt')</c>), which comes back under <paramref name="bareTensorName"/>.
    /// </summary>
    public static StateDict ReadTensors(string path, string bareTensorName) => Read(path, bareTensorName, null);

    static StateDict Read(string path, string? bareTensorName, string? weightsKey)
    {
        var format = FileFormats.Detect(path);
        return Guarded(path, format, () => format switch
        {
            FileFormat.TorchZip => FromTorchZip(path, bareTensorName, weightsKey),
            FileFormat.Safetensors when weightsKey is not null =>
                throw new ModelInputException(path, "--weights-key: a safetensors file holds one set of weights, with no keys to choose from"),
            FileFormat.Safetensors => FromSafetensors(path),
            FileFormat.TorchLegacy => throw new ModelInputException(path, "saved in PyTorch's legacy (pre-1.6) format; re-save it with torch.save in a current PyTorch"),
            FileFormat.Onnx => throw new ModelInputException(path, "is an ONNX model; this command reads PyTorch checkpoints and safetensors"),
            _ => throw new ModelInputException(path, "not a PyTorch checkpoint (.pth zip) or safetensors file"),
        });
    }

    /// <summary>Runs a reader; any failure but our own messages (and running out of memory) becomes one naming the file.</summary>
    internal static T Guarded<T>(string path, FileFormat format, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (ModelInputException) { throw; }
        catch (TypeInitializationException e) when (e.TypeName?.StartsWith("TorchSharp", StringComparison.Ordinal) == true)
        {
            // Not the file's fault: the application has no TorchSharp backend (its native libraries).
            throw new InvalidOperationException("TorchSharp could not load its native library: the application must reference a TorchSharp backend package " +
                "(TorchSharp-cpu, or a CUDA one) besides RMNet", e);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ModelInputException(path, $"cannot read {(format == FileFormat.Safetensors ? "safetensors file" : "PyTorch checkpoint")}: {e.Message}", e);
        }
    }

    static StateDict FromSafetensors(string path)
    {
        SafetensorsFile.CheckHeader(path);
        var sd = new StateDict(path);
        foreach (var (key, tensor) in Safetensors.LoadStateDict(path))
            sd.Add(key, tensor);
        return sd;
    }

    /// <summary>
    /// The top-level string entries of a <c>torch.save</c> archive that holds a dict (rmnet's plain <c>.pth</c> keeps
    /// its architecture there); empty for any other file.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ReadStrings(string path)
    {
        if (FileFormats.Detect(path) != FileFormat.TorchZip) return new Dictionary<string, string>();
        return Guarded<IReadOnlyDictionary<string, string>>(path, FileFormat.TorchZip, () =>
        {
            using var zip = new ZipArchive(File.OpenRead(path), ZipArchiveMode.Read);
            return ReadPickle(zip, path).Root is PickleDict d
                ? d.Entries.Where(e => e is { Key: string, Value: string }).ToDictionary(e => (string)e.Key, e => (string)e.Value!)
                : new Dictionary<string, string>();
        });
    }

    /// <summary>The storage types (<c>HalfStorage</c>, <c>FloatStorage</c>, ...) of the weights of a <c>torch.save</c> archive, from its pickle alone.</summary>
    internal static IEnumerable<string> WeightStorageTypes(string path) => Guarded(path, FileFormat.TorchZip, () =>
    {
        using var zip = new ZipArchive(File.OpenRead(path), ZipArchiveMode.Read);
        return PickledWeights.Find(ReadPickle(zip, path).Root, path).Select(n => n.Tensor.Storage.StorageType).Distinct().ToList();
    });

    /// <summary>data.pkl read by <see cref="PickleReader"/>, and the archive's storage entries by key.</summary>
    static (object? Root, Dictionary<string, ZipArchiveEntry> Storages) ReadPickle(ZipArchive zip, string path)
    {
        var pkl = zip.Entries.Where(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal)).ToList();
        if (pkl.Count == 0 && zip.Entries.Any(e => e.Name == "model.json"))
            throw new ModelInputException(path, "a TorchScript archive of PyTorch 1.3 or older (model.json), which rmnet does not read; in PyTorch, "
                + "save its weights with torch.save(torch.jit.load(path).state_dict(), 'weights.pth')");
        if (pkl.Count != 1) throw new ModelInputException(path, pkl.Count == 0 ? "zip archive has no data.pkl: not a torch.save file" : "zip archive has several data.pkl entries");
        if (pkl[0].Length > MaxPickleBytes) throw new ModelInputException(path, $"data.pkl is {pkl[0].Length} bytes, over the {MaxPickleBytes} byte limit");
        var bytes = new byte[pkl[0].Length];
        using (var s = pkl[0].Open()) s.ReadExactly(bytes);
        string prefix = pkl[0].FullName[..^"data.pkl".Length];
        var entries = zip.Entries.Where(e => e.FullName.StartsWith(prefix + "data/", StringComparison.Ordinal))
            .GroupBy(e => e.FullName[(prefix.Length + 5)..]).ToDictionary(g => g.Key, g => g.First());
        return (PickleReader.Read(bytes, key => entries.TryGetValue(key, out var e) ? e.Length : null, path), entries);
    }

    static StateDict FromTorchZip(string path, string? bareTensorName, string? weightsKey)
    {
        using var zip = new ZipArchive(File.OpenRead(path), ZipArchiveMode.Read);
        var (root, entries) = ReadPickle(zip, path);
        var found = root is PickleTensor bare && bareTensorName is not null ? new FoundWeights(new() { (bareTensorName, bare) }, null, Array.Empty<string>())
            : PickledWeights.Locate(root, path, weightsKey);
        var named = found.Named;
        string prefix = SharedWrapperPrefix(named.Select(n => n.Name).ToList());
        var sd = new StateDict(path)
        {
            RemovedPrefix = prefix.Length > 0 ? prefix : null, WeightsKey = found.Key, OtherWeightsKeys = found.OtherKeys,
            // Module names lose the wrapper prefix as tensor names do (the wrapper itself becomes the root, "").
            SavedModules = found.Modules.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal) || kv.Key + "." == prefix)
                .ToDictionary(kv => kv.Key[Math.Min(prefix.Length, kv.Key.Length)..], kv => kv.Value),
        };
        var storages = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (key, record) in named)
                sd.Add(key[prefix.Length..], Materialize(record, entries, storages, path, key));
        }
        catch
        {
            sd.Dispose();
            throw;
        }
        finally
        {
            foreach (var t in storages.Values) t.Dispose();
        }
        if (sd.Count == 0) throw new ModelInputException(path, "the checkpoint holds no tensors");
        return sd;
    }

    const long MaxPickleBytes = 64L << 20;

    static readonly Dictionary<string, ScalarType> StorageTypes = new()
    {
        ["FloatStorage"] = ScalarType.Float32, ["DoubleStorage"] = ScalarType.Float64, ["HalfStorage"] = ScalarType.Float16,
        ["BFloat16Storage"] = ScalarType.BFloat16, ["LongStorage"] = ScalarType.Int64, ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16, ["CharStorage"] = ScalarType.Int8, ["ByteStorage"] = ScalarType.Byte, ["BoolStorage"] = ScalarType.Bool,
    };

    /// <summary>
    /// The tensor a pickle record describes: its storage read from the archive (once per storage), the strided view
    /// checked to lie inside it.
    /// </summary>
    static Tensor Materialize(PickleTensor t, Dictionary<string, ZipArchiveEntry> entries, Dictionary<string, Tensor> storages, string path, string name)
    {
        long count = t.Storage.Count;
        if (t.Offset < 0 || t.Shape.Any(d => d < 0) || t.Stride.Any(d => d < 0))
            throw new ModelInputException(path, $"tensor '{name}' has a negative offset, size or stride");
        long last = t.Offset, numel = 1;
        bool noElements = t.Shape.Any(d => d == 0);
        try
        {
            for (int i = 0; i < t.Shape.Length; i++)
            {
                last = checked(last + (t.Shape[i] - 1) * t.Stride[i]);
                numel = checked(numel * t.Shape[i]);
            }
        }
        catch (OverflowException)
        {
            throw new ModelInputException(path, $"tensor '{name}' has sizes and strides that overflow");
        }
        if (!noElements && last >= count)
            throw new ModelInputException(path, $"tensor '{name}' reaches element {last} of a storage of {count} elements");
        // A view with zero strides could claim any size over a tiny storage; weights never repeat their storage.
        if (numel > Math.Max(count, 1))
            throw new ModelInputException(path, $"tensor '{name}' has {numel} elements, more than the {count} of its storage");
        if (!storages.TryGetValue(t.Storage.Key, out var storage))
        {
            // Read straight into the tensor's memory: one copy of the weights, not two.
            storage = empty(count, dtype: StorageTypes[t.Storage.StorageType]);
            storages[t.Storage.Key] = storage;
            using var s = entries[t.Storage.Key].Open();
            s.ReadExactly(storage.bytes);
        }
        if (noElements) return zeros(t.Shape, storage.dtype);
        // A view keeps the storage alive after its own handle is disposed; contiguous() copies only true strided views.
        using var view = storage.as_strided(t.Shape, t.Stride, t.Offset);
        return view.contiguous();
    }
}
