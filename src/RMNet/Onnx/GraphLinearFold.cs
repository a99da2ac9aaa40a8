using Onnx;
using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// Folds what the RM passes leave between linear layers, after them (their merge convs create new pairs):
/// <list type="bullet">
/// <item>Conv + BatchNormalization: the BN folds into the conv (docs/design.md section 1). Condition: the conv's
///   output feeds only the BN; the BN has constant parameters, per-channel (not <c>spatial=0</c>), inference mode.
///   (A pre-activation block's <c>bn1</c>, or IResNet's final <c>bn2</c>, after the last block's merge conv.)</item>
/// <item>Gemm + BatchNormalization: the BN scales the Gemm's output columns. Condition: the Gemm has constant B and C
///   and no transA, its output feeds only the BN, which has constant parameters and is in inference mode (a BN over
///   a 2-D [N, F] value is per feature). (IResNet's BatchNorm1d <c>features</c>.)</item>
/// <item>Conv then 1x1 Conv with nothing between: one conv (<see cref="LinearConvMerge"/>), where that costs no
///   more (<see cref="LinearConvMerge.Pays"/>). Condition: the first conv has one group, constant weights and its
///   output feeds only the second; the second is 1x1, stride 1, unpadded, one group.</item>
/// </list>
/// Every input goes through this pass, so a checkpoint and its export get the same decisions.
/// <code>
///   Conv(W, b) --BN(s, t)-->        becomes   Conv(s W, s b + t)
///   Gemm(W, c) --BN(s, t)-->        becomes   Gemm(s W, s c + t)
///   Conv(Wa, ba) --Conv1x1(Wb, bb)-->  becomes   Conv(Wb Wa, Wb ba + bb)   (where it pays)
/// </code>
/// </summary>
internal static class GraphLinearFold
{
    /// <summary>Rewrites <paramref name="model"/> in place; returns how many BNs were folded and how many conv pairs merged.</summary>
    public static (int FoldedBatchNorms, int MergedConvs) Run(ModelProto model, string file)
    {
        int folded = FoldConvBatchNorms(model, file) + FoldGemmBatchNorms(model, file);
        int merged = 0;
        for (int round; (round = MergeConvPairs(model, file)) > 0;) merged += round;
        return (folded, merged);
    }

    /// <summary>Folds every Conv + BatchNormalization pair <see cref="ConvNodes"/> finds.</summary>
    static int FoldConvBatchNorms(ModelProto model, string file) => GraphRewrite.Round(model, file,
        (g, e) => FoldConvBatchNorms(g, ConvNodes.Read(g), e.Replacements, e.Removed, e.Initializers, g.FreshNames()));

    /// <summary>Each Conv + BN unit not already <paramref name="removed"/> becomes one Conv with the BN folded in (shared with <see cref="GraphRm"/>).</summary>
    internal static int FoldConvBatchNorms(OnnxGraph g, Dictionary<string, ConvUnit> units, Dictionary<NodeProto, List<NodeProto>> replacements,
        HashSet<NodeProto> removed, List<TensorProto> initializers, Func<string, string> fresh)
    {
        int count = 0;
        foreach (var u in units.Values.Where(u => u.BatchNorm is not null && !removed.Contains(u.Conv)))
        {
            string w = fresh($"{OnnxGraph.NodeName(u.Conv)}_fused_weight"), b = fresh($"{OnnxGraph.NodeName(u.Conv)}_fused_bias");
            var layer = u.Fused.ToLayer();
            initializers.Add(OnnxTensors.FromTensor(w, layer.Weight));
            initializers.Add(OnnxTensors.FromTensor(b, layer.Bias));
            var conv = u.Conv.Clone();
            conv.Input.Clear();
            conv.Input.Add(new[] { u.Conv.Input[0], w, b });   // the conv keeps its own input (a Pad before it stays)
            conv.Output.Clear();
            conv.Output.Add(u.Output);
            replacements[u.BatchNorm!] = new List<NodeProto> { conv };
            removed.Add(u.Conv);
            removed.Add(u.BatchNorm!);
            count++;
        }
        return count;
    }

    static int FoldGemmBatchNorms(ModelProto model, string file) => GraphRewrite.Round(model, file, (g, e) =>
    {
        var (replacements, removed, initializers) = (e.Replacements, e.Removed, e.Initializers);
        var fresh = g.FreshNames();
        foreach (var gemm in g.Order.Where(n => n.OpType == "Gemm" && n.Input.Count >= 2))
        {
            if (gemm.Int("transA", 0) != 0 || !g.HasSingleUse(gemm.Output[0]) || g.ConsumersOf(gemm.Output[0])[0] is not { OpType: "BatchNormalization" } bn) continue;
            if (!g.Initializers.TryGetValue(gemm.Input[1], out var wProto) || wProto.Dims.Count != 2) continue;
            bool hasC = gemm.Input.Count > 2 && gemm.Input[2].Length > 0;
            if (hasC && !g.Initializers.ContainsKey(gemm.Input[2])) continue;
            if (bn.Input.Count < 5 || !bn.Input.Skip(1).Take(4).All(g.Initializers.ContainsKey)) continue;
            if (bn.Output.Skip(1).Any(o => o.Length > 0 && g.ConsumersOf(o).Count > 0) || bn.Attribute.FirstOrDefault(a => a.Name == "training_mode") is { I: 1 }) continue;
            var p = bn.Input.Skip(1).Take(4).Select(i => OnnxTensors.ToTensor(g.Initializers[i], file).to_type(ScalarType.Float64).flatten()).ToArray();
            double eps = bn.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
            var t = BatchNormFusion.Scale(new BatchNormWeights(p[0], p[1], p[2], p[3], eps)).to_type(ScalarType.Float64);
            var w = OnnxTensors.ToTensor(wProto, file).to_type(ScalarType.Float64) * gemm.Float("alpha", 1f);
            if (gemm.Int("transB", 0) == 0) w = w.t();                    // [F, K] from here on
            if (w.shape[0] != t.shape[0]) continue;
            var c = hasC ? OnnxTensors.ToTensor(g.Initializers[gemm.Input[2]], file).to_type(ScalarType.Float64).flatten() * gemm.Float("beta", 1f) : zeros(w.shape[0], dtype: ScalarType.Float64);
            if (c.shape[0] != 1 && c.shape[0] != w.shape[0]) continue;
            var weight = (w * t.unsqueeze(1)).to_type(ScalarType.Float32).contiguous();
            var bias = ((c - p[2]) * t + p[1]).to_type(ScalarType.Float32);
            string name = OnnxGraph.NodeName(gemm);
            string wName = fresh($"{name}_fused_weight"), bName = fresh($"{name}_fused_bias");
            initializers.Add(OnnxTensors.FromTensor(wName, weight));
            initializers.Add(OnnxTensors.FromTensor(bName, bias));
            replacements[bn] = new List<NodeProto> { OnnxNodes.Gemm(gemm.Name, gemm.Input[0], wName, bName, bn.Output[0]) };
            removed.Add(gemm);
            removed.Add(bn);
        }
        return replacements.Count;
    });

    /// <summary>One round of conv pair merges (a conv takes part in at most one merge a round).</summary>
    static int MergeConvPairs(ModelProto model, string file) => GraphRewrite.Round(model, file, (g, e) =>
    {
        var units = ConvNodes.Read(g);
        var (replacements, removed, initializers) = (e.Replacements, e.Removed, e.Initializers);
        var fresh = g.FreshNames();
        foreach (var second in units.Values.Where(u => u.BatchNorm is null && u.Pad is null && u.Problem is null))
        {
            if (!units.TryGetValue(second.Input, out var first) || first.BatchNorm is not null || first.Pad is not null || first.Problem is not null) continue;
            if (removed.Contains(first.Conv) || removed.Contains(second.Conv) || !g.HasSingleUse(first.Output)) continue;
            // Decided on shapes alone: the weights are read (as float64) only for a pair that merges, not for every candidate.
            var (da, db) = (first.WeightDims, second.WeightDims);
            if (db[2] != 1 || db[3] != 1 || second.Geometry.Stride != 1 || second.Geometry.Padding != Padding2d.All(0) || second.Geometry.Groups != 1 || first.Geometry.Groups != 1) continue;
            if (!LinearConvMerge.Pays(da[0], da[1], da[2], da[3], 1, db[0])) continue;
            var a = first.Fused;
            var b = second.Fused;
            var (w, bias) = LinearConvMerge.Merge(a.Weights.Weight, a.Weights.BiasOrZeros(), b.Weights.Weight, b.Weights.BiasOrZeros());
            var layer = new ConvLayer(w.to_type(ScalarType.Float32), bias.to_type(ScalarType.Float32), a.Stride, a.Stride, a.Padding, 1);
            string name = OnnxGraph.NodeName(first.Conv);
            string wName = fresh($"{name}_merged_weight"), bName = fresh($"{name}_merged_bias");
            initializers.Add(OnnxTensors.FromTensor(wName, layer.Weight));
            initializers.Add(OnnxTensors.FromTensor(bName, layer.Bias));
            replacements[second.Conv] = new List<NodeProto> { OnnxNodes.Conv(name, first.Input, wName, bName, second.Output, layer) };
            removed.Add(first.Conv);
            removed.Add(second.Conv);
        }
        return replacements.Count;
    });
}
