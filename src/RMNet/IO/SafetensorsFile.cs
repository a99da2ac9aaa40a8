using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace RMNet.IO;

/// <summary>
/// safetensors writing with a <c>__metadata__</c> block (TorchSharp.PyBridge writes none) and reading of that
/// block. Tensors are read with TorchSharp.PyBridge.
/// </summary>
internal static class SafetensorsFile
{
    /// <summary>
    /// Writes float32/float64/float16/bfloat16/int64 tensors in the given order, header padded to 8 bytes;
    /// <paramref name="cancellationToken"/> is checked before each tensor.
    /// </summary>
    public static void Write(Stream stream, IReadOnlyList<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string> metadata,
        CancellationToken cancellationToken = default)
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
        {
            cancellationToken.ThrowIfCancellationRequested();
            w.Write(t.contiguous().bytes);
        }
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

    static readonly Dictionary<string, int> ElementSizes = new()
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    /// <summary>
    /// Checks a safetensors header against the file before any tensor is read: header length within the file,
    /// known dtypes, non-negative shapes, every tensor's byte range inside the data section, of exactly
    /// shape x element size bytes, and no two ranges overlapping. Throws <see cref="ModelInputException"/>.
    /// </summary>
    public static void CheckHeader(string path)
    {
        using var f = File.OpenRead(path);
        if (f.Length < 8) throw new ModelInputException(path, "safetensors file shorter than its 8-byte header length");
        var lengthBytes = new byte[8];
        f.ReadExactly(lengthBytes);
        ulong headerLength = BitConverter.ToUInt64(lengthBytes);
        if (headerLength > (ulong)(f.Length - 8) || headerLength > 100_000_000)
            throw new ModelInputException(path, $"safetensors header claims {headerLength} bytes, the file has {f.Length - 8} after the length");
        var json = new byte[headerLength];
        f.ReadExactly(json);
        long dataLength = f.Length - 8 - (long)headerLength;
        var ranges = new List<(long Begin, long End, string Name)>();
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ModelInputException(path, "safetensors header is not a JSON object");
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__") continue;
                var e = p.Value;
                string dtype = e.GetProperty("dtype").GetString() ?? "";
                if (!ElementSizes.TryGetValue(dtype, out int elementSize))
                    throw new ModelInputException(path, $"tensor '{p.Name}' has unsupported dtype '{dtype}'");
                long count = 1;
                foreach (var d in e.GetProperty("shape").EnumerateArray())
                {
                    long dim = d.GetInt64();
                    if (dim < 0) throw new ModelInputException(path, $"tensor '{p.Name}' has a negative dimension");
                    count = checked(count * dim);
                }
                var offsets = e.GetProperty("data_offsets").EnumerateArray().Select(o => o.GetInt64()).ToArray();
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength)
                    throw new ModelInputException(path, $"tensor '{p.Name}' has data offsets [{string.Join(", ", offsets)}] outside the {dataLength}-byte data section");
                if (offsets[1] - offsets[0] != checked(count * elementSize))
                    throw new ModelInputException(path, $"tensor '{p.Name}' spans {offsets[1] - offsets[0]} bytes but its shape and dtype need {count * elementSize}");
                ranges.Add((offsets[0], offsets[1], p.Name));
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException or OverflowException)
        {
            throw new ModelInputException(path, $"malformed safetensors header: {e.Message}", e);
        }
        ranges.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        for (int i = 1; i < ranges.Count; i++)
            if (ranges[i].Begin < ranges[i - 1].End)
                throw new ModelInputException(path, $"tensors '{ranges[i - 1].Name}' and '{ranges[i].Name}' overlap in the data section");
    }

    static string DType(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        _ => throw new NotSupportedException($"safetensors writer: dtype {t}"),
    };
}
