using Google.Protobuf;
using Onnx;

namespace RMNet.Onnx;

/// <summary>What an ONNX file holds: operator counts, parameter count, whether additions (residuals) remain.</summary>
/// <param name="Opset">Default-domain opset.</param>
/// <param name="Producer">Producer name and version.</param>
/// <param name="OpCounts">Nodes per operator type.</param>
/// <param name="Parameters">Elements in all initializers.</param>
/// <param name="Inputs">Graph inputs that are not initializers.</param>
/// <param name="Outputs">Graph outputs.</param>
public sealed record OnnxSummary(long Opset, string Producer, IReadOnlyDictionary<string, int> OpCounts, long Parameters,
    IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs)
{
    /// <summary>True where any Add or Sum node remains.</summary>
    public bool HasAdditions => OpCounts.ContainsKey("Add") || OpCounts.ContainsKey("Sum");

    /// <summary>Reads <paramref name="path"/>; malformed files raise <see cref="ModelInputException"/>.</summary>
    public static OnnxSummary Read(string path)
    {
        ModelProto model;
        try
        {
            using var f = File.OpenRead(path);
            model = ModelProto.Parser.ParseFrom(f);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ModelInputException(path, $"not a valid ONNX protobuf: {e.Message}", e);
        }
        if (model.Graph is null) throw new ModelInputException(path, "ONNX model has no graph");
        var initializers = model.Graph.Initializer.Select(i => i.Name).ToHashSet();
        var ops = model.Graph.Node.GroupBy(n => n.OpType).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count());
        long parameters = model.Graph.Initializer.Sum(t => t.Dims.Aggregate(1L, (a, b) => a * b));
        long opset = model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(0).Max();
        string Dims(ValueInfoProto v) => v.Type?.TensorType?.Shape is { } s
            ? $"{v.Name} [{string.Join(", ", s.Dim.Select(d => d.DimParam is { Length: > 0 } p ? p : d.DimValue.ToString()))}]" : v.Name;
        return new OnnxSummary(opset, $"{model.ProducerName} {model.ProducerVersion}".Trim(), ops, parameters,
            model.Graph.Input.Where(i => !initializers.Contains(i.Name)).Select(Dims).ToList(), model.Graph.Output.Select(Dims).ToList());
    }
}
