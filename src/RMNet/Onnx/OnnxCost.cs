using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// Parameters and multiply-accumulates of an ONNX graph for one image, computed from tensor shapes only (no
/// weight is read, so a model with external data costs nothing to measure). MACs count Conv, Gemm and MatMul
/// with initializer weights, the layers that carry a convolutional network's arithmetic; a dynamic H or W is
/// taken to be <c>inputSize</c>.
/// </summary>
internal static class OnnxCost
{
    /// <summary>Elements in all initializers and Constant tensors.</summary>
    public static long Parameters(OnnxGraph g) => g.Initializers.Values.Sum(t => t.Dims.Aggregate(1L, (a, b) => a * b));

    /// <summary>Multiply-accumulates for one image of <paramref name="inputSize"/> where the graph leaves the size open.</summary>
    public static long MultiplyAccumulates(OnnxGraph g, int inputSize) => Count(g, inputSize).Macs;

    /// <summary>
    /// Multiply-accumulates, and how many convs could not be counted because their output size is not known (it
    /// went through an op the size propagation does not follow, such as Reshape or Transpose).
    /// </summary>
    public static (long Macs, int Uncounted) Count(OnnxGraph g, int inputSize)
    {
        var sizes = StaticShapes.Spatial(g, inputSize);
        long macs = 0;
        int uncounted = 0;
        foreach (var node in g.Order)
        {
            if (NodeMacs(g, sizes, node) is long m) macs += m;
            else uncounted++;
        }
        return (macs, uncounted);
    }

    /// <summary>
    /// The multiply-accumulates of one <paramref name="node"/> given the graph's spatial <paramref name="sizes"/>
    /// (<see cref="StaticShapes.Spatial"/>): 0 for nodes without initializer weights, null for a conv whose output size is not known.
    /// </summary>
    public static long? NodeMacs(OnnxGraph g, IReadOnlyDictionary<string, (long H, long W)> sizes, NodeProto node)
    {
        if (node.Input.Count < 2 || !g.Initializers.TryGetValue(node.Input[1], out var w)) return 0;
        var dims = w.Dims;
        switch (node.OpType)
        {
            case "Conv" when dims.Count >= 3 && sizes.TryGetValue(node.Output[0], out var o):
                // Every output element takes (C_in / groups) * kernel products: exactly the weight's size per output channel.
                return o.H * o.W * dims.Aggregate(1L, (a, b) => a * b);
            case "Conv" when dims.Count == 4:
                return null;
            case "Gemm" or "MatMul" when dims.Count == 2:
                long rows = sizes.TryGetValue(node.Input[0], out var s) ? s.H * s.W : 1;
                return rows * dims[0] * dims[1];
            default:
                return 0;
        }
    }
}
