using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// Dead-node removal. Condition: a node none of whose outputs is read by another node or is a graph output (ONNX's
/// standard operators have no side effects). Apply: the node goes, then whatever only it read, to a fixed point;
/// initializers nothing reads any more go with them. Before: <c>h -> Shape -> Gather -> Unsqueeze -> Concat</c> left
/// unread once the Reshape it fed was rewritten; after: nothing. Returns the nodes removed.
/// </summary>
internal static class DeadNodes
{
    public static int Run(ModelProto model, string file) => GraphRewrite.Round(model, file, (g, edits) =>
    {
        var outputs = g.Graph.Output.Select(o => o.Name).ToHashSet();
        var readers = g.Order.SelectMany(n => n.Input.Where(i => i.Length > 0).Distinct()).GroupBy(i => i).ToDictionary(x => x.Key, x => x.Count());
        // Latest first: a node's readers come after it, so one sweep reaches the fixed point.
        foreach (var node in g.Order.Reverse())
        {
            if (node.Output.Any(o => o.Length > 0 && (outputs.Contains(o) || readers.GetValueOrDefault(o) > 0))) continue;
            edits.Removed.Add(node);
            foreach (var i in node.Input.Where(i => i.Length > 0).Distinct()) readers[i]--;
        }
        return edits.Removed.Count;
    });
}
