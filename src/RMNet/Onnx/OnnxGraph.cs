using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// An index over an ONNX graph: who produces and who consumes each value, the initializers (Constant nodes
/// included), and a topological order. Construction validates the graph: every node input must be a graph
/// input, an initializer or another node's output; every graph output must be produced; no value may be
/// produced twice; no cycles; no unknown operator in the standard domain. Errors name the node and value.
/// </summary>
internal sealed class OnnxGraph
{
    /// <summary>Indexes and validates <paramref name="graph"/>; <paramref name="file"/> names it in errors.</summary>
    public OnnxGraph(GraphProto graph, string file)
    {
        Graph = graph;
        File = file;
        foreach (var t in graph.Initializer) Initializers[t.Name] = t;
        foreach (var n in graph.Node.Where(n => n.OpType == "Constant"))
        {
            var value = n.Attribute.FirstOrDefault(a => a.Name == "value")?.T;
            if (value is not null && n.Output.Count == 1) Initializers[n.Output[0]] = value;
        }
        var inputs = graph.Input.Select(i => i.Name).ToHashSet();
        foreach (var node in graph.Node)
            if (node.Domain is "" or "ai.onnx" && !OnnxOperators.Standard.Contains(node.OpType))
                throw new ModelInputException(file, $"node '{NodeName(node)}' has unknown operator '{node.OpType}' (not in the ONNX standard domain)");
        foreach (var node in graph.Node)
        {
            foreach (var o in node.Output.Where(o => o.Length > 0))
                if (!Producers.TryAdd(o, node) || inputs.Contains(o) && !Initializers.ContainsKey(o))
                    throw new ModelInputException(file, $"value '{o}' is produced twice (node '{NodeName(node)}')");
        }
        foreach (var node in graph.Node)
        {
            foreach (var i in node.Input.Where(i => i.Length > 0))
            {
                if (!Producers.ContainsKey(i) && !inputs.Contains(i) && !Initializers.ContainsKey(i))
                    throw new ModelInputException(file, $"node '{NodeName(node)}' ({node.OpType}) reads '{i}', which no node, graph input or initializer provides (missing initializer or dangling input)");
                if (!Consumers.TryGetValue(i, out var list)) Consumers[i] = list = new List<NodeProto>();
                list.Add(node);
            }
        }
        foreach (var o in graph.Output)
            if (!Producers.ContainsKey(o.Name) && !inputs.Contains(o.Name) && !Initializers.ContainsKey(o.Name))
                throw new ModelInputException(file, $"graph output '{o.Name}' is produced by no node (dangling output)");
        Order = TopologicalOrder(graph, file);
    }

    /// <summary>The underlying graph.</summary>
    public GraphProto Graph { get; }
    /// <summary>The file, for error messages.</summary>
    public string File { get; }
    /// <summary>Initializers and Constant-node values by name.</summary>
    public Dictionary<string, TensorProto> Initializers { get; } = new();
    /// <summary>The node producing each value.</summary>
    public Dictionary<string, NodeProto> Producers { get; } = new();
    /// <summary>The nodes reading each value.</summary>
    public Dictionary<string, List<NodeProto>> Consumers { get; } = new();
    /// <summary>Nodes in an order where every node comes after its producers.</summary>
    public IReadOnlyList<NodeProto> Order { get; }

    /// <summary>Nodes that read <paramref name="value"/>.</summary>
    public IReadOnlyList<NodeProto> ConsumersOf(string value) => Consumers.TryGetValue(value, out var l) ? l : Array.Empty<NodeProto>();

    /// <summary>True where <paramref name="value"/> is read by exactly one node and is not a graph output.</summary>
    public bool HasSingleUse(string value) => ConsumersOf(value).Count == 1 && Graph.Output.All(o => o.Name != value);

    /// <summary>The node producing <paramref name="value"/>, or null for graph inputs and initializers.</summary>
    public NodeProto? ProducerOf(string value) => Producers.GetValueOrDefault(value);

    /// <summary>
    /// Names for new values and initializers that nothing in the graph uses yet: the stem itself, else stem_1, stem_2, ...
    /// (each name handed out once). The one way the passes name what they add.
    /// </summary>
    public Func<string, string> FreshNames()
    {
        var used = new HashSet<string>(Producers.Keys.Concat(Initializers.Keys).Concat(Graph.Input.Select(i => i.Name)));
        return stem =>
        {
            string name = stem;
            for (int i = 1; !used.Add(name); i++) name = $"{stem}_{i}";
            return name;
        };
    }

    /// <summary>A printable node name (its name, or its first output).</summary>
    public static string NodeName(NodeProto n) => n.Name.Length > 0 ? n.Name : n.Output.FirstOrDefault() ?? n.OpType;

    static IReadOnlyList<NodeProto> TopologicalOrder(GraphProto graph, string file)
    {
        var producers = new Dictionary<string, int>();
        for (int i = 0; i < graph.Node.Count; i++)
            foreach (var o in graph.Node[i].Output) producers[o] = i;
        var pending = new int[graph.Node.Count];
        var dependents = new List<int>[graph.Node.Count];
        for (int i = 0; i < graph.Node.Count; i++) dependents[i] = new List<int>();
        for (int i = 0; i < graph.Node.Count; i++)
            foreach (var input in graph.Node[i].Input.Distinct())
                if (producers.TryGetValue(input, out var p))
                {
                    pending[i]++;
                    dependents[p].Add(i);
                }
        var ready = new Queue<int>(Enumerable.Range(0, graph.Node.Count).Where(i => pending[i] == 0));
        var order = new List<NodeProto>(graph.Node.Count);
        while (ready.Count > 0)
        {
            int i = ready.Dequeue();
            order.Add(graph.Node[i]);
            foreach (var d in dependents[i])
                if (--pending[d] == 0) ready.Enqueue(d);
        }
        if (order.Count != graph.Node.Count)
        {
            var stuck = graph.Node[Enumerable.Range(0, graph.Node.Count).First(i => pending[i] > 0)];
            throw new ModelInputException(file, $"the graph has a cycle through node '{NodeName(stuck)}' ({stuck.OpType})");
        }
        return order;
    }
}
