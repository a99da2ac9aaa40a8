using Onnx;
using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// A 1x1 conv (with its bias) followed directly by an unpadded kxk conv, as one kxk conv: DBB's 1x1-kxk branch
/// (and its average branch once <see cref="AveragePoolAsConv"/> made the pool a conv). With y = W1 x + b1 per pixel,
/// z = W2 * y + b2 = (W2 W1) * x + (b2 + sum over m, i, j of W2[o, m, i, j] b1[m]). Where the 1x1 conv pads x (as
/// <see cref="BorderWrites"/> leaves it), the padded pixels give y = b1 in both forms, so the merged conv pads x the same.
/// Conditions: the first conv is 1x1 with stride 1 and its output (after a foldable BN) is read only by the second;
/// the second is larger than 1x1 (a 1x1 pair is <see cref="GraphLinearFold"/>'s, which weighs the cost) and has no padding of its own
/// (a zero-padded y would not be b1 at the border) and no dilation; both have
/// constant weights; the second's groups are a multiple of the first's (the merged conv then has the first's groups).
/// <code>
///   x --Conv1x1(W1, b1, pads p, group g)[+BN]--Conv kxk(W2, b2, stride s, pads 0)[+BN]-->
///   becomes
///   x --Conv kxk(W2 W1, b2 + W2 b1, stride s, pads p, group g)-->
/// </code>
/// </summary>
internal static class PointwiseThenConv
{
    /// <summary>Rewrites <paramref name="model"/> in place until no pair is left; returns how many pairs were merged.</summary>
    public static int Run(ModelProto model, string file)
    {
        int merged = 0;
        for (int round; (round = Round(model, file)) > 0;) merged += round;
        return merged;
    }

    /// <summary>One round: a conv takes part in at most one merge.</summary>
    static int Round(ModelProto model, string file) => GraphRewrite.Round(model, file, (g, e) =>
    {
        var units = ConvNodes.Read(g);
        var fresh = g.FreshNames();
        int count = 0;
        foreach (var second in units.Values.Where(u => u.Problem is null && u.Geometry.Padding == Padding2d.All(0)))
        {
            if (!units.TryGetValue(second.Input, out var first) || first.Problem is not null || !g.HasSingleUse(first.Output)) continue;
            if (e.Removed.Contains(first.Conv) || e.Replacements.ContainsKey(first.Conv) || e.Removed.Contains(second.Conv)) continue;
            var (d1, d2) = (first.WeightDims, second.WeightDims);
            int g1 = first.Geometry.Groups, g2 = second.Geometry.Groups;
            // A 1x1 second conv is GraphLinearFold's pair, merged there only where that costs no more.
            if (d2[2] * d2[3] == 1) continue;
            if (d1[2] != 1 || d1[3] != 1 || first.Geometry.Stride != 1 || g2 % g1 != 0 || d1[0] != d2[1] * g2 || d2[0] % g1 != 0) continue;

            var a = first.Fused;
            var b = second.Fused;
            // Per group of the first conv (q), so that a depthwise pair is not expanded to a dense kernel: W1 [g1, M/g1, Cin/g1],
            // W2 [g1, O/g1, M/g1, k, k] (the second's finer groups inside q expanded), then W[q] = W2[q] W1[q].
            long m = d1[0], o = d2[0], outPer = o / g1;
            int r = g2 / g1;
            var w1 = a.Weights.Weight.reshape(g1, m / g1, d1[1]);
            var w2 = Kernels.Regroup(b.Weights.Weight, g2, g1).reshape(g1, outPer, m / g1, d2[2], d2[3]);
            var weight = einsum("qomij,qmc->qocij", w2, w1).reshape(o, d1[1], d2[2], d2[3]);
            var bias = b.Weights.BiasOrZeros() + einsum("qomij,qm->qo", w2, a.Weights.BiasOrZeros().reshape(g1, m / g1)).reshape(o);
            var layer = new ConvLayer(weight.to_type(ScalarType.Float32), bias.to_type(ScalarType.Float32), b.Stride, b.Stride, a.Padding, g1);

            string name = OnnxGraph.NodeName(second.Conv);
            var wName = fresh($"{name}_merged_weight");
            var bName = fresh($"{name}_merged_bias");
            e.Initializers.Add(OnnxTensors.FromTensor(wName, layer.Weight));
            e.Initializers.Add(OnnxTensors.FromTensor(bName, layer.Bias));
            e.Replacements[second.Conv] = new List<NodeProto> { OnnxNodes.Conv(name, first.Input, wName, bName, second.Output, layer) };
            foreach (var n in first.Nodes.Concat(second.Nodes).Where(n => n != second.Conv)) e.Removed.Add(n);
            e.Removed.Add(first.Conv);
            count++;
        }
        return count;
    });
}
