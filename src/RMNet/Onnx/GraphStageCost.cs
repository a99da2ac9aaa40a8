using Onnx;
using RMNet.Models;

namespace RMNet.Onnx;

/// <summary>
/// Parameters and multiply-accumulates of a graph per stage, where the graph's nodes are named after a network's modules
/// (a checkpoint lowered into the graph, before and after conversion): a node belongs to the stage whose module prefix
/// starts its name; a node named after no stage belongs to the stage before it, or to <c>stem</c> before the first stage
/// and <c>head</c> after the last. The converted graph's nodes keep their block's name as a prefix, so both graphs
/// split the same way.
/// </summary>
internal static class GraphStageCost
{
    /// <summary>
    /// <c>stem</c>, one row per prefix of <paramref name="stagePrefixes"/> (named by it), <c>head</c>; each initializer counted
    /// once, in the stage of the first node that reads it; MACs as <see cref="OnnxCost"/> counts them, at <paramref name="inputSize"/>.
    /// </summary>
    public static List<StageCost> Of(ModelProto model, string file, int inputSize, IReadOnlyList<string> stagePrefixes)
    {
        var g = new OnnxGraph(model.Graph, file);
        var sizes = StaticShapes.Spatial(g, inputSize);
        var nodes = g.Order.ToList();
        var stageOf = new Lowering.LoweredLayout(stagePrefixes, 0).StagesOf(nodes.Select(n => n.Name).ToList());
        var parameters = new Dictionary<string, long>();
        var macs = new Dictionary<string, long>();
        var counted = new HashSet<string>();
        for (int i = 0; i < nodes.Count; i++)
        {
            string current = stageOf[i];
            long p = nodes[i].Input.Where(name => g.Initializers.ContainsKey(name) && counted.Add(name))
                .Sum(name => g.Initializers[name].Dims.Aggregate(1L, (a, b) => a * b));
            parameters[current] = parameters.GetValueOrDefault(current) + p;
            macs[current] = macs.GetValueOrDefault(current) + (OnnxCost.NodeMacs(g, sizes, nodes[i]) ?? 0);
        }
        return new[] { "stem" }.Concat(stagePrefixes).Append("head")
            .Select(s => new StageCost(s, parameters.GetValueOrDefault(s), macs.GetValueOrDefault(s))).ToList();
    }
}
