using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace RMNet.IO;

/// <summary>
/// safetensors writing with a <c>__metadata__</c> block (TorchSharp.PyBridge writes none) and reading of that
/// block. Tensors are read with TorchSharp.PyBridge.
/// </summary>
public static class SafetensorsFile
{
    /// <summary>Writes float32/float64/int64 tensors in the given order, header padded to 8 bytes.</summary>
    public static void Write(Stream stream, IReadOnlyList<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        var header = new JsonObject();
        var meta = new JsonObject();
        foreach (var (k, v) in metadata) meta[k] = v;
        header["__metadata__"] = meta;
        long offset = 0;
        foreach (var (name, t) in tensors)
        {
            long length = t.numel() * t.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = DType(t.dtype),
                ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + length),
            };
            offset += length;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - json.Length % 8) % 8;
        var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write((ulong)(json.Length + pad));
        w.Write(json);
        for (int i = 0; i < pad; i++) w.Write((byte)' ');
        foreach (var (_, t) in tensors)
            w.Write(t.contiguous().bytes);
        w.Flush();
    }

    /// <summary>The <c>__metadata__</c> strings of a safetensors file (empty where it has none).</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        using var f = File.OpenRead(path);
        var lengthBytes = new byte[8];
        f.ReadExactly(lengthBytes);
        ulong length = BitConverter.ToUInt64(lengthBytes);
        if (length > (ulong)Math.Min(f.Length - 8, 100_000_000))
            throw new ModelInputException(path, $"safetensors header length {length} exceeds the file");
        var json = new byte[length];
        f.ReadExactly(json);
        using var doc = JsonDocument.Parse(json);
        var result = new Dictionary<string, string>();
        if (doc.RootElement.TryGetProperty("__metadata__", out var meta) && meta.ValueKind == JsonValueKind.Object)
            foreach (var p in meta.EnumerateObject())
                result[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();
        return result;
    }

    static string DType(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        _ => throw new NotSupportedException($"safetensors writer: dtype {t}"),
    };
}
