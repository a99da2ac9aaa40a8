using System.Collections;
using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// A node where two data paths that split from a common value meet again.
/// </summary>
/// <param name="Name">The node's name (or its first output, where it has none).</param>
/// <param name="Op">Its operator: Add or Sum for a residual join, Mul for a gate.</param>
/// <param name="Kind"><c>residual</c> (an addition: what RM removes) or <c>gate</c> (a multiplication: SE, ECA, SiLU, which stay by design).</param>
/// <param name="Operands">The data values it combines.</param>
internal sealed record GraphJoin(string Name, string Op, string Kind, IReadOnlyList<string> Operands);

/// <summary>
/// Finds every join of a graph, independent of any block pattern: an Add or Sum node (a residual join) or a Mul
/// node (a gate) with at least two data operands that share an ancestor. This is the ground truth behind
/// <c>--strict</c>: a residual join the RM passes did not recognise is still found here, so it is reported
/// instead of silently kept.
/// <para>
/// Data values are the graph's non-initializer inputs and everything computed from them, except what Shape and
/// Size return (tensor metadata, not activations). Two operands share an ancestor exactly when they depend on a
/// common graph input, since every data value descends from one; the sets are bit sets over the graph inputs,
/// one pass in topological order.
/// </para>
/// </summary>
internal static class ResidualJoins
{
    static readonly HashSet<string> Additions = new() { "Add", "Sum" };

    /// <summary>Every join of <paramref name="g"/>, in topological order.</summary>
    public static IReadOnlyList<GraphJoin> Find(OnnxGraph g)
    {
        var inputs = g.Graph.Input.Select(i => i.Name).Where(n => !g.Initializers.ContainsKey(n)).ToList();
        var sources = new Dictionary<string, BitArray>();
        for (int i = 0; i < inputs.Count; i++)
        {
            var bits = new BitArray(inputs.Count);
            bits[i] = true;
            sources[inputs[i]] = bits;
        }
        var joins = new List<GraphJoin>();
        foreach (var node in g.Order)
        {
            var data = node.Input.Where(i => i.Length > 0 && sources.ContainsKey(i)).ToList();
            if (data.Count == 0 || node.OpType is "Shape" or "Size") continue;
            var union = new BitArray(inputs.Count);
            foreach (var d in data) union.Or(sources[d]);
            foreach (var o in node.Output.Where(o => o.Length > 0)) sources[o] = union;

            bool addition = Additions.Contains(node.OpType);
            if (!addition && node.OpType != "Mul" || data.Count < 2 || !ShareASource(data.Select(d => sources[d]).ToList())) continue;
            joins.Add(new GraphJoin(OnnxGraph.NodeName(node), node.OpType, addition ? "residual" : "gate", data));
        }
        return joins;
    }

    /// <summary>True where some pair of the operands depends on a common graph input.</summary>
    static bool ShareASource(IReadOnlyList<BitArray> sets)
    {
        for (int a = 0; a < sets.Count; a++)
            for (int b = a + 1; b < sets.Count; b++)
                if (new BitArray(sets[a]).And(sets[b]).HasAnySet()) return true;
        return false;
    }
}
