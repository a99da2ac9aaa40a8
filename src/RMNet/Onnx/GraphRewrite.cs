using Onnx;

namespace RMNet.Onnx;

/// <summary>What one round of a pass changes: nodes replaced (the key's place takes the list), nodes removed, initializers added.</summary>
internal sealed record GraphEdits(Dictionary<NodeProto, List<NodeProto>> Replacements, HashSet<NodeProto> Removed, List<TensorProto> Initializers)
{
    public GraphEdits() : this(new(), new(), new()) { }
}

/// <summary>The one way the graph passes write their result back into a model.</summary>
internal static class GraphRewrite
{
    /// <summary>
    /// One rewrite round: indexes <paramref name="model"/>'s graph, lets <paramref name="edit"/> collect its edits, applies
    /// them where there are any (replacements or removals), and returns what <paramref name="edit"/> counted. The round's tensors end with its dispose scope.
    /// </summary>
    public static int Round(ModelProto model, string file, Func<OnnxGraph, GraphEdits, int> edit)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        var g = new OnnxGraph(model.Graph, file);
        var edits = new GraphEdits();
        int count = edit(g, edits);
        if (edits.Replacements.Count > 0 || edits.Removed.Count > 0) Apply(model, g, edits.Replacements, edits.Removed, edits.Initializers);
        return count;
    }

    /// <summary>
    /// Replaces the graph's nodes: in topological order, each node in <paramref name="replacements"/> becomes its
    /// replacement nodes (which produce its outputs), nodes in <paramref name="removed"/> go, Constant nodes and
    /// initializers nothing reads any more are dropped (with the graph inputs old IR versions list for them),
    /// and value_info is cleared because shapes of removed values would be stale.
    /// </summary>
    public static void Apply(ModelProto model, OnnxGraph g, IReadOnlyDictionary<NodeProto, List<NodeProto>> replacements, IReadOnlySet<NodeProto> removed,
        IEnumerable<TensorProto> newInitializers)
    {
        var nodes = new List<NodeProto>();
        foreach (var n in g.Order)
        {
            if (replacements.TryGetValue(n, out var rep)) nodes.AddRange(rep);
            else if (!removed.Contains(n)) nodes.Add(n);
        }
        var graph = model.Graph;
        var read = nodes.SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name)).ToHashSet();
        nodes.RemoveAll(n => n.OpType == "Constant" && n.Output.All(o => !read.Contains(o)));
        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        graph.Initializer.AddRange(newInitializers);
        var keep = graph.Initializer.Where(t => read.Contains(t.Name)).ToList();
        graph.Initializer.Clear();
        graph.Initializer.AddRange(keep);
        var dropped = g.Initializers.Keys.Where(k => !read.Contains(k)).ToHashSet();
        var inputs = graph.Input.Where(i => !dropped.Contains(i.Name)).ToList();
        graph.Input.Clear();
        graph.Input.AddRange(inputs);
        graph.ValueInfo.Clear();
    }
}
