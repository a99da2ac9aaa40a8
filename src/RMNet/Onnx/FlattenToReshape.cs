using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// States the width of the classifier's input: a Flatten whose output only Gemm nodes read becomes a Reshape to
/// [-1, K], K being the Gemm weight's input width. The two are the same function (Gemm needs exactly K values a
/// row), but readers that infer shapes when they load a model (OpenCV's DNN module) take a Flatten of dynamic H and
/// W to be 0 wide and refuse the Gemm after it; residual Adds happened to hide this in the original graph.
/// <code>
///   x [N, C, 1, 1] --Flatten(axis=1)--> Gemm(W [M, K], transB=1)   becomes   x --Reshape([-1, K])--> Gemm
/// </code>
/// Conditions: Flatten with axis 1; every reader a Gemm with an initializer weight and no transA; opset 5 or later
/// (Reshape's shape is an input from opset 5 on).
/// </summary>
internal static class FlattenToReshape
{
    /// <summary>Rewrites <paramref name="model"/> in place; returns how many Flatten nodes became Reshape.</summary>
    public static int Run(ModelProto model, string file)
    {
        long opset = model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(1).Max();
        if (opset < 5) return 0;
        var g = new OnnxGraph(model.Graph, file);
        var fresh = g.FreshNames();
        int rewritten = 0;
        foreach (var flatten in g.Order.Where(n => n.OpType == "Flatten" && (n.Attribute.FirstOrDefault(a => a.Name == "axis")?.I ?? 1) == 1))
        {
            var readers = g.ConsumersOf(flatten.Output[0]);
            if (readers.Count == 0 || model.Graph.Output.Any(o => o.Name == flatten.Output[0])) continue;
            var widths = readers.Select(r => GemmWidth(g, r, flatten.Output[0])).Distinct().ToList();
            if (widths is not [long k] || k < 0) continue;
            string shape = fresh($"{OnnxGraph.NodeName(flatten)}_shape");
            model.Graph.Initializer.Add(OnnxTensors.FromTensor(shape, TorchSharp.torch.tensor(new[] { -1L, k })));
            flatten.OpType = "Reshape";
            flatten.Attribute.Clear();
            flatten.Input.Add(shape);
            rewritten++;
        }
        return rewritten;
    }

    /// <summary>K of a Gemm that reads <paramref name="value"/> as A with an initializer B, or -1 where it is anything else.</summary>
    static long GemmWidth(OnnxGraph g, NodeProto reader, string value)
    {
        if (reader.OpType != "Gemm" || reader.Input.Count < 2 || reader.Input[0] != value || reader.Input[1] == value) return -1;
        if (reader.Attribute.FirstOrDefault(a => a.Name == "transA")?.I == 1) return -1;
        if (!g.Initializers.TryGetValue(reader.Input[1], out var w) || w.Dims.Count != 2) return -1;
        return reader.Attribute.FirstOrDefault(a => a.Name == "transB")?.I == 1 ? w.Dims[1] : w.Dims[0];
    }
}
