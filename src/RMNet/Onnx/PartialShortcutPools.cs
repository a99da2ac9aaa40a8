using Onnx;

namespace RMNet.Onnx;

/// <summary>A residual join whose shortcut average-pools a map with partial windows at the size asked for.</summary>
/// <param name="Join">The join's node name.</param>
/// <param name="Pool">The AveragePool's node name.</param>
/// <param name="Height">The pooled map's height at that size.</param>
/// <param name="Width">Its width.</param>
/// <param name="Window">The pool's s x s window (and stride).</param>
internal sealed record PartialShortcutPool(string Join, string Pool, long Height, long Width, int Window);

/// <summary>
/// The average-pooled shortcuts (ResNet-D's <c>downsample.0</c>: an s x s pool of stride s, then a 1x1 conv and its
/// BN) whose pooled map is not a whole number of windows at a given input size. The RM conversion puts such a pool
/// into the strided conv's reserved taps, which is exact only where every window is whole (docs/design.md section
/// 12): at such a size the plain network is another function, which inspect says before anything is converted.
/// </summary>
internal static class PartialShortcutPools
{
    /// <summary>The joins of <paramref name="model"/> (not changed) whose shortcut pool has partial windows at an input of <paramref name="size"/> (where H and W are dynamic).</summary>
    public static IReadOnlyList<PartialShortcutPool> Find(ModelProto model, string file, long size)
    {
        var g = new OnnxGraph(model.Graph, file);
        return Find(g, ResidualJoins.Find(g), StaticShapes.Spatial(g, size));
    }

    /// <summary>Each residual join of <paramref name="joins"/> whose operand is conv(+BN) of such a pool, with sizes from <paramref name="sizes"/>.</summary>
    public static IReadOnlyList<PartialShortcutPool> Find(OnnxGraph g, IEnumerable<GraphJoin> joins, IReadOnlyDictionary<string, (long H, long W)> sizes)
    {
        var found = new List<PartialShortcutPool>();
        foreach (var join in joins.Where(j => j.Kind == "residual"))
            foreach (var operand in join.Operands)
            {
                var node = g.ProducerOf(operand);
                if (node?.OpType == "BatchNormalization") node = g.ProducerOf(node.Input[0]);
                if (node?.OpType != "Conv" || g.ProducerOf(node.Input[0]) is not { OpType: "AveragePool" } pool) continue;
                if (GraphRm.PoolWindow(pool) is not int s || !sizes.TryGetValue(pool.Input[0], out var size)) continue;
                if (size.H % s != 0 || size.W % s != 0)
                    found.Add(new PartialShortcutPool(join.Name, OnnxGraph.NodeName(pool), size.H, size.W, s));
            }
        return found;
    }
}
