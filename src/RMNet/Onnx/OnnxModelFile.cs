using Google.Protobuf;
using Onnx;
using RMNet.IO;
using DataLocation = Onnx.TensorProto.Types.DataLocation;

namespace RMNet.Onnx;

/// <summary>
/// Reads and writes ONNX files, including ONNX external data (tensors stored in side files, needed past the
/// 2 GB protobuf limit). External data is loaded into the tensors on read; on write, models whose
/// initializers exceed <see cref="ExternalDataThreshold"/> bytes get one side file <c>&lt;name&gt;.data</c>.
/// </summary>
internal static class OnnxModelFile
{
    /// <summary>
    /// Initializer bytes above which the writer moves tensors to external data by default: 1.75 GiB, leaving
    /// room under protobuf's 2 GB message limit for the rest of the model.
    /// </summary>
    public const long ExternalDataThreshold = 7L << 28;

    /// <summary>Reads <paramref name="path"/> and its external data; malformed files raise <see cref="ModelInputException"/>.</summary>
    public static ModelProto Load(string path)
    {
        var model = Parse(path, f => ModelProto.Parser.ParseFrom(f));
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        foreach (var t in AllTensors(model.Graph))
            if (t.DataLocation == DataLocation.External) LoadExternal(t, dir, path);
        return model;
    }

    /// <summary>
    /// Reads <paramref name="path"/>'s structure: the graph, names, types and shapes, with no external data and
    /// without the values of large initializers (see <see cref="OnnxStructureReader"/>), so its memory does not grow
    /// with the weights. Enough to inspect a model, not to convert it.
    /// </summary>
    public static ModelProto LoadStructure(string path) => Parse(path, OnnxStructureReader.Read);

    static ModelProto Parse(string path, Func<Stream, ModelProto> parse)
    {
        if (FileFormats.Detect(path) != FileFormat.Onnx && !path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
            throw new ModelInputException(path, "not an ONNX model");
        ModelProto model;
        try
        {
            using var f = File.OpenRead(path);
            model = parse(f);
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or IOException or InvalidDataException)
        {
            throw new ModelInputException(path, $"not a valid ONNX protobuf: {e.Message}", e);
        }
        if (model.Graph is null) throw new ModelInputException(path, "ONNX model has no graph");
        return model;
    }

    /// <summary>Every initializer and Constant-node tensor of the graph.</summary>
    static IEnumerable<TensorProto> AllTensors(GraphProto graph) =>
        graph.Initializer.Concat(graph.Node.Where(n => n.OpType == "Constant").SelectMany(n => n.Attribute).Where(a => a.T is not null).Select(a => a.T));

    static void LoadExternal(TensorProto t, string dir, string path)
    {
        var info = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
        if (!info.TryGetValue("location", out var location) || location.Length == 0)
            throw new ModelInputException(path, $"initializer '{t.Name}' is external but names no location");
        // The location must stay inside the model's directory: no absolute paths, no climbing out.
        string full = Path.GetFullPath(Path.Combine(dir, location));
        if (Path.IsPathRooted(location) || !full.StartsWith(dir + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new ModelInputException(path, $"initializer '{t.Name}' points outside the model's directory ('{location}')");
        if (!File.Exists(full)) throw new ModelInputException(path, $"external data file '{location}' of initializer '{t.Name}' is missing");
        long fileLength = new FileInfo(full).Length;
        long offset = info.TryGetValue("offset", out var o) && long.TryParse(o, out var ov) ? ov : 0;
        long length = info.TryGetValue("length", out var l) && long.TryParse(l, out var lv) ? lv : fileLength - offset;
        if (fileLength == 0) throw new ModelInputException(path, $"external data file '{location}' of initializer '{t.Name}' is empty");
        if (offset < 0 || length < 0 || offset + length > fileLength || length > int.MaxValue)
            throw new ModelInputException(path, $"initializer '{t.Name}' reads bytes {offset}..{offset + length} of '{location}', which has {fileLength}");
        var bytes = new byte[length];
        using (var f = File.OpenRead(full))
        {
            f.Position = offset;
            f.ReadExactly(bytes);
        }
        t.RawData = ByteString.CopyFrom(bytes);
        t.DataLocation = DataLocation.Default;
        t.ExternalData.Clear();
    }

    /// <summary>
    /// Writes a model whose initializers are given as tensors, one tensor in memory at a time: the graph is
    /// written as the protobuf fields of <paramref name="skeleton"/> (no initializers) followed by one
    /// initializer field per tensor, which protobuf reads as the same message. Past
    /// <paramref name="externalDataThreshold"/> bytes the tensors go to external data instead.
    /// <paramref name="cancellationToken"/> is checked before each tensor.
    /// </summary>
    public static void Save(ModelProto skeleton, IReadOnlyList<(string Name, TorchSharp.torch.Tensor Tensor)> initializers, string path,
        long externalDataThreshold = ExternalDataThreshold, CancellationToken cancellationToken = default)
    {
        long bytes = initializers.Sum(i => i.Tensor.numel() * i.Tensor.ElementSize);
        if (bytes > externalDataThreshold)
        {
            // External data holds the bulk; the remaining protobuf is small and is built in memory.
            var model = skeleton.Clone();
            foreach (var (name, tensor) in initializers)
            {
                cancellationToken.ThrowIfCancellationRequested();
                model.Graph.Initializer.Add(OnnxTensors.FromTensor(name, tensor));
            }
            Save(model, path, externalDataThreshold, cancellationToken);
            return;
        }
        AttributePresence.Mark(skeleton);
        long graphLength = skeleton.Graph.CalculateSize();
        foreach (var (name, tensor) in initializers)
        {
            cancellationToken.ThrowIfCancellationRequested();
            graphLength += FieldSize(OnnxTensors.FromTensor(name, tensor).CalculateSize());
        }
        var rest = skeleton.Clone();
        rest.Graph = null;
        AtomicFile.Write(path, s =>
        {
            var output = new CodedOutputStream(s, leaveOpen: true);
            rest.WriteTo(output);
            output.WriteTag(GraphField, WireFormat.WireType.LengthDelimited);
            output.WriteLength(checked((int)graphLength));
            skeleton.Graph.WriteTo(output);
            foreach (var (name, tensor) in initializers)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var t = OnnxTensors.FromTensor(name, tensor);
                output.WriteTag(InitializerField, WireFormat.WireType.LengthDelimited);
                output.WriteLength(t.CalculateSize());
                t.WriteTo(output);
            }
            output.Flush();
        }, cancellationToken: cancellationToken);
    }

    const int GraphField = 7;        // ModelProto.graph
    const int InitializerField = 5;  // GraphProto.initializer

    /// <summary>Bytes of a length-delimited field with a one-byte tag.</summary>
    static long FieldSize(int length) => 1 + CodedOutputStream.ComputeLengthSize(length) + length;

    /// <summary>
    /// Writes <paramref name="model"/> atomically; past <paramref name="externalDataThreshold"/> initializer bytes
    /// (default <see cref="ExternalDataThreshold"/>) the tensors go to <c>&lt;file name&gt;.data</c> beside it
    /// (written first, also atomically). <paramref name="cancellationToken"/> is checked before each external tensor.
    /// </summary>
    public static void Save(ModelProto model, string path, long externalDataThreshold = ExternalDataThreshold, CancellationToken cancellationToken = default)
    {
        long bytes = model.Graph.Initializer.Sum(t => (long)t.RawData.Length);
        if (bytes > externalDataThreshold)
        {
            string dataName = Path.GetFileName(path) + ".data";
            var external = model.Clone();
            AtomicFile.Write(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, dataName), s =>
            {
                long offset = 0;
                foreach (var t in external.Graph.Initializer)
                {
                    if (t.RawData.Length < 1024) continue;  // small tensors stay inline
                    cancellationToken.ThrowIfCancellationRequested();
                    t.RawData.WriteTo(s);
                    t.DataLocation = DataLocation.External;
                    t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataName });
                    t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
                    t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = t.RawData.Length.ToString() });
                    offset += t.RawData.Length;
                    t.RawData = ByteString.Empty;
                }
            }, cancellationToken: cancellationToken);
            model = external;
        }
        AttributePresence.Mark(model);
        AtomicFile.Write(path, s => model.WriteTo(s), cancellationToken: cancellationToken);
    }
}
