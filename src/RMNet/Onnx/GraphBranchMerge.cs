using Onnx;
using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// RepVGG-style branch merging at the graph level: a sum (Add/Sum nodes, nested) whose terms are convs (with
/// their BN) reading the same value x, an identity BatchNormalization of x, or x itself, becomes one conv.
/// A kxk conv with "same" padding and smaller odd kernels whose windows share its centre (1x1 convs without padding,
/// ACNet's kx1 and 1xk convs padded by k/2 along their long side), the same stride, and groups that are multiples of
/// the fewest (a depthwise average beside a dense conv is written in the dense conv's groups). This turns a
/// train-time RepVGG export into its deploy form; the math is <see cref="BranchFusion"/>'s, float64.
/// Conditions: every term reads the same value; the convs' weights (and BNs) are constants; kernels, padding and
/// stride fit as above; the sum's terms are read by nothing else. Where a whole tree of sums does not merge, each
/// operand that is a sum is tried on its own: a ResNet's shortcut add whose other operand is a block's branch sum (ACNet's
/// and DBB's <c>conv_bn</c> in the DBB repository's ResNet) keeps the add and merges the block.
/// <code>
///   x --Conv3x3+BN--+                                x --Conv3x3 (W3 + pad(W1) + I, b3 + b1 + bI)--> y
///   x --Conv1x1+BN--+--Add--Add--> y     becomes
///   x --BN----------+
/// </code>
/// </summary>
internal static class GraphBranchMerge
{
    /// <summary>Merges the sums of <paramref name="model"/> in place; returns it and how many sums were merged.</summary>
    public static (ModelProto Model, int Merged) Run(ModelProto model, string file)
    {
        // In place, not on a copy (a dense ResNet-50 is 1.1 GB a copy); the pass's float64 tensors end with its scope.
        using var scope = TorchSharp.torch.NewDisposeScope();
        var g = new OnnxGraph(model.Graph, file);
        var units = ConvNodes.Read(g);
        var replacements = new Dictionary<NodeProto, NodeProto>();
        var removed = new HashSet<NodeProto>();
        var initializers = new List<TensorProto>();
        // New initializers must not take a name the graph already uses (as GraphRm's and GraphCarryRm's do not).
        var fresh = g.FreshNames();
        int merged = 0;
        foreach (var top in g.Order.Where(IsSum))
        {
            if (removed.Contains(top) || (g.ConsumersOf(top.Output[0]).Count == 1 && IsSum(g.ConsumersOf(top.Output[0])[0]))) continue;
            var pending = new Stack<NodeProto>();
            pending.Push(top);
            while (pending.TryPop(out var root))
            {
                if (TryMerge(root)) continue;
                // Not one conv as a whole, e.g. a residual join one of whose operands is a block's own branch sum (ACNet's or
                // DBB's conv_bn right before a ResNet's shortcut add): each operand that is a sum may still be one.
                foreach (var input in root.Input)
                    if (g.ProducerOf(input) is { } p && IsSum(p) && g.HasSingleUse(input)) pending.Push(p);
            }
        }
        if (merged == 0) return (model, 0);
        GraphRewrite.Apply(model, g, replacements.ToDictionary(kv => kv.Key, kv => new List<NodeProto> { kv.Value }), removed, initializers);
        return (model, merged);

        // The sum tree under root as one conv, where every term allows it; false (nothing changed) otherwise.
        bool TryMerge(NodeProto root)
        {
            var terms = new List<string>();
            var sums = new List<NodeProto>();
            if (!Flatten(g, root, terms, sums)) return false;
            var convs = terms.Select(t => units.GetValueOrDefault(t)).ToList();
            var first = convs.FirstOrDefault(c => c is not null);
            if (first is null) return false;
            string x = first.Input;
            var identityBn = new List<NodeProto>();
            bool identityX = false, ok = true;
            for (int i = 0; i < terms.Count && ok; i++)
            {
                if (convs[i] is { } c) ok = c.Input == x && c.Problem is null && g.HasSingleUse(c.Output);
                else if (terms[i] == x) ok = !identityX && (identityX = true);
                else if (g.ProducerOf(terms[i]) is { OpType: "BatchNormalization" } bn && bn.Input[0] == x && g.HasSingleUse(terms[i])
                         && bn.Input.Skip(1).Take(4).All(g.Initializers.ContainsKey) && identityBn.Count == 0) identityBn.Add(bn);
                else ok = false;
            }
            var unitsHere = convs.OfType<ConvUnit>().ToList();
            if (!ok || unitsHere.Count + identityBn.Count + (identityX ? 1 : 0) < 2) return false;
            var fusedConv = Merge(unitsHere, identityBn.FirstOrDefault(), identityX, g);
            if (fusedConv is null) return false;

            string name = OnnxGraph.NodeName(root);
            var layer = fusedConv.ToLayer();
            var w = OnnxTensors.FromTensor(fresh($"{name}_merged_weight"), layer.Weight);
            var b = OnnxTensors.FromTensor(fresh($"{name}_merged_bias"), layer.Bias);
            initializers.Add(w);
            initializers.Add(b);
            replacements[root] = OnnxNodes.Conv($"{name}_merged", x, w.Name, b.Name, root.Output[0], layer);
            foreach (var n in sums.Concat(unitsHere.SelectMany(u => u.Nodes)).Concat(identityBn)) removed.Add(n);
            merged++;
            return true;
        }
    }

    static bool IsSum(NodeProto n) => n.OpType is "Add" or "Sum" && n.Output.Count == 1;

    /// <summary>The terms of a tree of single-use Add/Sum nodes.</summary>
    static bool Flatten(OnnxGraph g, NodeProto sum, List<string> terms, List<NodeProto> sums)
    {
        sums.Add(sum);
        foreach (var input in sum.Input)
        {
            if (g.ProducerOf(input) is { } p && IsSum(p) && g.HasSingleUse(input))
            {
                if (!Flatten(g, p, terms, sums)) return false;
            }
            else terms.Add(input);
        }
        return terms.Count <= 16;
    }

    /// <summary>
    /// True where <paramref name="c"/>'s odd kernel, no larger than kh x kw, reads the same windows as the main conv
    /// when placed at its centre: its padding is the main's less the offset on every side.
    /// </summary>
    static bool Centred(FusedConv c, int kh, int kw, Padding2d pad)
    {
        int dh = (kh - c.KernelH) / 2, dw = (kw - c.KernelW) / 2;
        return c.KernelH % 2 == 1 && c.KernelW % 2 == 1 && dh >= 0 && dw >= 0
            && c.Padding == new Padding2d(pad.Top - dh, pad.Left - dw, pad.Bottom - dh, pad.Right - dw);
    }

    /// <summary>One conv equal to the sum, or null where the geometry does not allow it.</summary>
    static FusedConv? Merge(List<ConvUnit> convs, NodeProto? identityBn, bool identityX, OnnxGraph g)
    {
        // The largest window (a square kxk before a kx1 of the same height) is the one the others are placed in.
        var main = convs.OrderByDescending(c => c.Fused.KernelH * c.Fused.KernelW).First().Fused;
        int kh = main.KernelH, kw = main.KernelW;
        var pad = main.Padding;
        if (kh != kw || pad != Padding2d.All((kh - 1) / 2) || kh % 2 == 0) return null;
        // A term in finer groups (a depthwise average, as QARepVGGBlockV2's pool becomes) is the same conv in the coarsest
        // groups with zeros between its groups: every term is written in those.
        int groups = convs.Min(c => c.Fused.Groups);
        if (convs.Any(c => c.Fused.Stride != main.Stride || c.Fused.Groups % groups != 0 || c.Fused.OutChannels != main.OutChannels || c.Fused.InChannels != main.InChannels))
            return null;
        var weight = zeros(new[] { main.OutChannels, main.InChannels / groups, kh, kw }, dtype: ScalarType.Float64);
        var bias = zeros(main.OutChannels, dtype: ScalarType.Float64);
        foreach (var c in convs.Select(u => u.Fused))
        {
            var kernel = Kernels.Regroup(c.Weights.Weight, c.Groups, groups);
            if (c.KernelH == kh && c.Padding == pad) weight += kernel;
            else if (Centred(c, kh, kw, pad)) weight += Kernels.PadToCentre(kernel, kh, kw);
            else return null;
            bias += c.Weights.BiasOrZeros();
        }
        if (identityBn is not null || identityX)
        {
            if (main.Stride != 1 || main.OutChannels != main.InChannels) return null;
            var dirac = new ConvWeights(Kernels.GroupedDirac(main.OutChannels, groups, kh, kw, pad.Top, pad.Left), null);
            var id = dirac.ToFloat64();
            if (identityBn is not null)
            {
                var p = identityBn.Input.Skip(1).Take(4).Select(i => OnnxTensors.ToTensor(g.Initializers[i], g.File).flatten()).ToArray();
                double eps = identityBn.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
                id = BatchNormFusion.Fuse(dirac, new BatchNormWeights(p[0], p[1], p[2], p[3], eps));
            }
            if (identityBn is not null && identityX) return null; // two identity terms: not a RepVGG block
            weight += id.Weight;
            bias += id.BiasOrZeros();
        }
        return new FusedConv(new ConvWeights(weight, bias), main.Stride, pad, groups);
    }
}
