using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// What an ONNX file holds, read from its structure alone (external data is never loaded): operator counts,
/// parameters, MACs, and every join (<see cref="ResidualJoins"/>), so a model reads as residual or plain
/// without converting it.
/// </summary>
/// <param name="Opset">Default-domain opset.</param>
/// <param name="Producer">Producer name and version.</param>
/// <param name="OpCounts">Nodes per operator type.</param>
/// <param name="Parameters">Elements in all initializers and Constant tensors.</param>
/// <param name="Inputs">Graph inputs that are not initializers.</param>
/// <param name="Outputs">Graph outputs.</param>
/// <param name="Joins">Residual joins and gates, in graph order.</param>
/// <param name="Macs">Multiply-accumulates for one image (see <see cref="OnnxCost"/>).</param>
/// <param name="InputSize">The H (and W) the MACs are for: the graph's own where it fixes them, else the size asked for.</param>
/// <param name="UncountedConvs">Convs left out of <paramref name="Macs"/> because their output size could not be propagated.</param>
internal sealed record OnnxSummary(long Opset, string Producer, IReadOnlyDictionary<string, int> OpCounts, long Parameters,
    IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs, IReadOnlyList<GraphJoin> Joins, long Macs, int InputSize, int UncountedConvs = 0)
{
    /// <summary>Joins whose average-pooled shortcut has partial windows at <see cref="InputSize"/> (RM cannot be exact there).</summary>
    public IReadOnlyList<PartialShortcutPool> PartialPools { get; init; } = Array.Empty<PartialShortcutPool>();

    /// <summary>Residual joins (Add/Sum whose operands share an ancestor).</summary>
    public IReadOnlyList<GraphJoin> Residuals => Joins.Where(j => j.Kind == "residual").ToList();

    /// <summary>Gates (Mul whose operands share an ancestor: SE, ECA, SiLU).</summary>
    public IReadOnlyList<GraphJoin> Gates => Joins.Where(j => j.Kind == "gate").ToList();

    /// <summary>Reads <paramref name="path"/>; malformed files raise <see cref="ModelInputException"/>.</summary>
    public static OnnxSummary Read(string path, int inputSize = 224)
    {
        return Of(OnnxModelFile.LoadStructure(path), path, inputSize);
    }

    /// <summary>The summary of a model in memory; <paramref name="file"/> names it in errors.</summary>
    public static OnnxSummary Of(ModelProto model, string file, int inputSize = 224)
    {
        var g = new OnnxGraph(model.Graph, file);
        var ops = model.Graph.Node.GroupBy(n => n.OpType).OrderBy(k => k.Key, StringComparer.Ordinal).ToDictionary(k => k.Key, k => k.Count());
        long opset = model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(0).Max();
        string Dims(ValueInfoProto v) => v.Type?.TensorType?.Shape is { } s
            ? $"{v.Name} [{string.Join(", ", s.Dim.Select(d => d.DimParam is { Length: > 0 } p ? p : d.DimValue.ToString()))}]" : v.Name;
        var (macs, uncounted) = OnnxCost.Count(g, inputSize);
        // A graph that fixes its input size is costed at that size, whatever was asked.
        var fixedSize = model.Graph.Input.Where(i => !g.Initializers.ContainsKey(i.Name)).Select(i => i.Type?.TensorType?.Shape?.Dim)
            .FirstOrDefault(d => d is { Count: 4 } && d[2].DimValue > 0 && d[2].DimValue == d[3].DimValue)?[2].DimValue;
        var joins = ResidualJoins.Find(g);
        int size = (int)(fixedSize ?? inputSize);
        return new OnnxSummary(opset, $"{model.ProducerName} {model.ProducerVersion}".Trim(), ops, OnnxCost.Parameters(g),
            model.Graph.Input.Where(i => !g.Initializers.ContainsKey(i.Name)).Select(Dims).ToList(), model.Graph.Output.Select(Dims).ToList(),
            joins, macs, size, uncounted) { PartialPools = PartialShortcutPools.Find(g, joins, StaticShapes.Spatial(g, size)) };
    }
}
