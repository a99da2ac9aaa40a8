using Onnx;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// Looks through what exporters put between a value and its readers, so the later passes see weights as
/// initializers and convs as adjacent nodes:
/// <list type="bullet">
/// <item>An <c>Identity</c> node is removed and its readers read its input instead. PyTorch's exporter writes them
/// where it deduplicated equal initializers (a freshly initialised ResNet's BN parameters), tf2onnx on activations.</item>
/// <item>A <c>Cast</c> to float of an initializer or Constant becomes a float initializer (exporters that keep
/// weights in float16 or float64 cast them in the graph).</item>
/// <item>A <c>Constant</c> node holding a tensor (<c>value</c>) becomes an initializer of the same name (PyTorch writes
/// Clip's bounds that way), in models of IR version 4 or later (earlier ones must also list initializers as graph
/// inputs).</item>
/// <item>An <c>Add</c> of a one-element constant zero is removed and its readers read the other operand (PyTorch exports
/// <c>out = 0</c> then <c>out = out + branch(x)</c>, timm MobileOne's first term, so).</item>
/// </list>
/// Condition: the node's output is not a graph output (those names are the model's interface and stay).
/// <code>
///   W --Identity--> W' --> Conv        becomes   W --> Conv
///   W16 --Cast(to=float)--> W --> Conv  becomes   W (float32 initializer) --> Conv
///   x --Add(0)--> y --> Conv           becomes   x --> Conv
/// </code>
/// </summary>
internal static class InlineAliases
{
    const int FloatType = (int)TensorProto.Types.DataType.Float;

    /// <summary>Removes such nodes from <paramref name="model"/> in place; returns it and how many Identity and Cast nodes were removed.</summary>
    public static (ModelProto Model, int Removed) Run(ModelProto model, string file)
    {
        // In place, not on a copy (a dense ResNet-50 is 1.1 GB a copy); the pass's float64 tensors end with its scope.
        using var scope = TorchSharp.torch.NewDisposeScope();
        var g = new OnnxGraph(model.Graph, file);
        var outputs = model.Graph.Output.Select(o => o.Name).ToHashSet();
        var rename = new Dictionary<string, string>();
        var removed = new HashSet<NodeProto>();
        string Resolve(string value) => rename.TryGetValue(value, out var to) ? to : value;

        int constants = 0;
        foreach (var node in g.Order)
        {
            if (node.OpType == "Constant" && model.IrVersion >= 4 && node.Output.Count == 1 && !outputs.Contains(node.Output[0])
                && node.Attribute is [{ Name: "value", T: { } value }])
            {
                var t = value.Clone();
                t.Name = node.Output[0];
                model.Graph.Initializer.Add(t);
                removed.Add(node);
                constants++;
                continue;
            }
            if (node.Input.Count == 0 || node.Output.Count != 1 || outputs.Contains(node.Output[0])) continue;
            if (node.OpType == "Identity")
            {
                rename[node.Output[0]] = Resolve(node.Input[0]);
                removed.Add(node);
            }
            else if (node.OpType == "Add" && node.Input.Count == 2 && AddendOfZero(g, Resolve(node.Input[0]), Resolve(node.Input[1]), file) is { } kept)
            {
                rename[node.Output[0]] = kept;
                removed.Add(node);
            }
            else if (node.OpType == "Cast" && node.Attribute.FirstOrDefault(a => a.Name == "to")?.I == FloatType
                     && g.Initializers.TryGetValue(Resolve(node.Input[0]), out var source))
            {
                // The Cast goes, so its output name is free for the initializer that replaces it.
                using var values = OnnxTensors.ToTensor(source, file).to_type(ScalarType.Float32);
                model.Graph.Initializer.Add(OnnxTensors.FromTensor(node.Output[0], values));
                removed.Add(node);
            }
        }
        if (removed.Count == 0) return (model, 0);
        foreach (var node in model.Graph.Node)
            for (int i = 0; i < node.Input.Count; i++)
                node.Input[i] = Resolve(node.Input[i]);
        GraphRewrite.Apply(model, g, new Dictionary<NodeProto, List<NodeProto>>(), removed, Array.Empty<TensorProto>());
        return (model, removed.Count - constants);
    }

    /// <summary>The operand of <c>a + b</c> that is not a one-element constant zero, where one is (adding it changes neither values nor shape).</summary>
    static string? AddendOfZero(OnnxGraph g, string a, string b, string file) =>
        ZeroScalar(g, b, file) ? a : ZeroScalar(g, a, file) ? b : null;

    static bool ZeroScalar(OnnxGraph g, string value, string file)
    {
        if (!g.Initializers.TryGetValue(value, out var t) || t.Dims.Aggregate(1L, (a, b) => a * b) != 1) return false;
        using var v = OnnxTensors.ToTensor(t, file);
        return v.flatten()[0].item<double>() == 0;
    }
}
