using System.IO.Compression;
using System.Text.Json;
using Onnx;

namespace RMNet.IO;

/// <summary>
/// The floating-point element types a model file's weights are stored in (<c>float16</c>, <c>bfloat16</c>,
/// <c>float32</c>, <c>float64</c>), read from the file's structure alone: ONNX initializer types, safetensors
/// header dtypes, the storage types of a <c>torch.save</c> pickle's weights. No weight is read.
/// </summary>
internal static class WeightDtypes
{
    static readonly string[] Order = { "float16", "bfloat16", "float32", "float64" };

    /// <summary>The float dtypes of <paramref name="path"/>'s weights, narrowest first (empty where it has none).</summary>
    public static IReadOnlyList<string> Of(string path)
    {
        var names = FileFormats.Detect(path) switch
        {
            FileFormat.Onnx => Onnx.OnnxModelFile.LoadStructure(path).Graph.Initializer.Select(t => (TensorProto.Types.DataType)t.DataType switch
            {
                TensorProto.Types.DataType.Float16 => "float16",
                TensorProto.Types.DataType.Bfloat16 => "bfloat16",
                TensorProto.Types.DataType.Float => "float32",
                TensorProto.Types.DataType.Double => "float64",
                _ => null,
            }),
            FileFormat.Safetensors => SafetensorsDtypes(path).Select(d => d switch
            {
                "F16" => "float16", "BF16" => "bfloat16", "F32" => "float32", "F64" => "float64", _ => null,
            }),
            FileFormat.TorchZip => CheckpointReader.WeightStorageTypes(path).Select(s => s switch
            {
                "HalfStorage" => "float16", "BFloat16Storage" => "bfloat16", "FloatStorage" => "float32", "DoubleStorage" => "float64", _ => null,
            }),
            _ => Enumerable.Empty<string?>(),
        };
        var present = names.OfType<string>().ToHashSet();
        return Order.Where(present.Contains).ToList();
    }

    /// <summary>One word for <see cref="Of"/>: the single dtype, or the list joined with '+' ("float16+float32").</summary>
    public static string Describe(IReadOnlyList<string> dtypes) => dtypes.Count == 0 ? "none" : string.Join("+", dtypes);

    static IEnumerable<string> SafetensorsDtypes(string path)
    {
        SafetensorsFile.CheckHeader(path);
        using var f = File.OpenRead(path);
        var lengthBytes = new byte[8];
        f.ReadExactly(lengthBytes);
        var json = new byte[BitConverter.ToUInt64(lengthBytes)];
        f.ReadExactly(json);
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__")
            .Select(p => p.Value.GetProperty("dtype").GetString() ?? "").ToList();
    }
}
