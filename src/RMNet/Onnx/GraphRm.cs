using Google.Protobuf;
using Onnx;
using RMNet.Plain;
using RMNet.Rm;
using RMNet.Weights;

namespace RMNet.Onnx;

/// <summary>What happened to one residual block found in a graph.</summary>
/// <param name="Name">The block's Add/Sum node.</param>
/// <param name="Shortcut">"identity", "projection" or "avg-pool projection".</param>
/// <param name="Convs">Convs in the residual branch.</param>
/// <param name="Plain">True where the block was made plain.</param>
/// <param name="Reason">Why it was left as it is, or null.</param>
internal sealed record GraphBlockReport(string Name, string Shortcut, int Convs, bool Plain, string? Reason)
{
    /// <summary>Where a plain block equals the original only under a condition the graph cannot fix (e.g. even sizes), that condition.</summary>
    public string? Condition { get; init; }

    /// <summary>
    /// Reserved channels the grouped form added as zeros so they fill whole groups (see <see cref="RmBlock.ZeroChannels"/>;
    /// a checkpoint's <c>zero_channels</c>, summed over the blocks); not part of an ONNX input's block list.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int ZeroChannels { get; init; }
}

/// <summary>The outcome of the graph-level RM pass.</summary>
/// <param name="Model">The transformed model (the input, rewritten in place).</param>
/// <param name="Blocks">Every residual block found, in graph order.</param>
/// <param name="FoldedBatchNorms">BatchNormalization nodes folded into convs.</param>
internal sealed record GraphRmResult(ModelProto Model, IReadOnlyList<GraphBlockReport> Blocks, int FoldedBatchNorms)
{
    /// <summary>Sums of parallel branches merged into one conv first (RepVGG style; see <see cref="GraphBranchMerge"/>).</summary>
    public int MergedBranches { get; init; }

    /// <summary>Every join of the input graph and what became of it, plus any join only the output has.</summary>
    public IReadOnlyList<JoinReport> Joins { get; init; } = Array.Empty<JoinReport>();

    /// <summary>The input graph's summary (costs, joins), taken before the passes rewrote it; null where not taken.</summary>
    public OnnxSummary? Input { get; init; }

    /// <summary>The converted graph's summary (costs, joins); null where not taken.</summary>
    public OnnxSummary? Output { get; init; }

    /// <summary>Residual joins (Add/Sum) of the input graph.</summary>
    public int JoinsFound { get; init; }

    /// <summary>Residual joins left in the output: what <c>--strict</c> refuses.</summary>
    public int JoinsRemaining => Joins.Count(j => j.Remains);
}

/// <summary>
/// RM at the ONNX graph level, for ResNets from any exporter. Finds blocks of the form
/// Relu(Add|Sum(branch(x), shortcut(x))) where the branch is Conv(+BN) [Relu Conv(+BN)]+ and the shortcut is x
/// or a 1x1 Conv(+BN) of x, with either operand order; folds every foldable BN into its conv; and replaces each
/// block whose input is provably non-negative (the output of a Relu, possibly through MaxPool) with plain
/// Conv/Relu nodes (<see cref="ResidualChainRm"/>). Blocks that cannot be made exactly plain are kept and
/// reported with the reason. Every other node is kept as it is.
/// <code>
///   x --Conv+BN--Relu--Conv+BN--+                     x --Conv [x ; conv1(x)]--Relu--Conv [conv2(.) + x]--Relu--> y
///   x --------------------------+--Add--Relu--> y     becomes
/// </code>
/// (Three-conv blocks reserve through the middle conv too, grouped or dense; a projection shortcut's 1x1 conv is
/// added into the last conv at its centre tap.)
/// </summary>
internal static class GraphRm
{
    /// <summary>A block found: <paramref name="Pool"/> is an s x s AveragePool of stride s before the projection (ResNet-D), or null.</summary>
    sealed record Match(NodeProto Add, NodeProto Relu, string X, List<ConvUnit> Chain, List<NodeProto> InnerRelus, ConvUnit? Projection,
        NodeProto? Pool = null, int PoolSize = 1);

    /// <summary>Transforms <paramref name="model"/> in place, middle convs in the given form; <paramref name="blockDone"/> is called after each block made plain.</summary>
    public static GraphRmResult Transform(ModelProto model, string file, RmMode mode = RmMode.Grouped, Action? blockDone = null)
    {
        // In place, not on a copy (a dense ResNet-50 is 1.1 GB a copy); the pass's float64 tensors end with its scope.
        using var scope = TorchSharp.torch.NewDisposeScope();
        var g = new OnnxGraph(model.Graph, file);
        var units = ConvNodes.Read(g);
        var sizes = StaticShapes.Spatial(g);
        var matches = FindMatches(g, units);
        var reports = new List<GraphBlockReport>();
        var replacements = new Dictionary<NodeProto, List<NodeProto>>();   // emitted at the key node's place
        var removed = new HashSet<NodeProto>();
        var newInitializers = new List<TensorProto>();
        var fresh = g.FreshNames();

        foreach (var m in matches)
        {
            // The block's own weights are read first, into the pass's scope (a unit may be read again later);
            // the new weights live in the block's scope: copied into initializers before the next block's are made.
            var fused = m.Chain.Select(u => u.Fused).ToList();
            var projection = m.Projection?.Fused;
            using var blockScope = TorchSharp.torch.NewDisposeScope();
            string name = OnnxGraph.NodeName(m.Add);
            string shortcut = m.Projection is null ? "identity" : m.Pool is null ? "projection" : "avg-pool projection";
            string? reason = m.Chain.Append(m.Projection).OfType<ConvUnit>().Select(u => u.Problem).FirstOrDefault(p => p is not null);
            if (reason is null && !IsNonNegative(g, m.X))
                reason = $"block input '{m.X}' may be negative (not produced by a Relu)";
            IReadOnlyList<ConvLayer>? convs = null;
            string? condition = null;
            int zeroChannels = 0;
            if (reason is null)
            {
                try
                {
                    var inputSize = sizes.TryGetValue(m.X, out var size) ? size : ((long H, long W)?)null;
                    if (m.PoolSize > 1 && PoolProblem(m.PoolSize, inputSize) is string problem) throw new RmException(problem);
                    var block = ResidualChainRm.Transform(fused, projection, mode, inputSize: inputSize, shortcutPool: m.PoolSize);
                    (convs, zeroChannels) = (block.Convs, block.ZeroChannels);
                    if (m.PoolSize > 1 && inputSize is null) condition = PoolCondition(m.PoolSize);
                }
                catch (RmException e) { reason = e.Message; }
            }
            reports.Add(new GraphBlockReport(name, shortcut, m.Chain.Count, convs is not null, reason) { Condition = condition, ZeroChannels = zeroChannels });
            if (convs is null) continue;   // the carry pass may take it: counted there
            blockDone?.Invoke();

            var nodes = new List<NodeProto>();
            string current = m.X;
            for (int i = 0; i < convs.Count; i++)
            {
                string w = fresh($"{name}_rm{i}_weight"), b = fresh($"{name}_rm{i}_bias");
                newInitializers.Add(OnnxTensors.FromTensor(w, convs[i].Weight));
                newInitializers.Add(OnnxTensors.FromTensor(b, convs[i].Bias));
                string convOut = fresh($"{name}_rm{i}_conv");
                nodes.Add(OnnxNodes.Conv($"{name}_rm{i}", current, w, b, convOut, convs[i]));
                // The block's final Relu keeps its output name, so everything downstream is untouched.
                string reluOut = i == convs.Count - 1 ? m.Relu.Output[0] : fresh($"{name}_rm{i}_relu");
                nodes.Add(OnnxNodes.Unary("Relu", $"{name}_rm{i}_relu", convOut, reluOut));
                current = reluOut;
            }
            replacements[m.Relu] = nodes;
            foreach (var n in m.Chain.Append(m.Projection).OfType<ConvUnit>().SelectMany(u => u.Nodes).Concat(m.InnerRelus).Append(m.Add)
                         .Concat(m.Pool is null ? Array.Empty<NodeProto>() : new[] { m.Pool }))
                removed.Add(n);
        }

        // Fold every remaining Conv+BN pair (stem, blocks left as they are, other layers).
        GraphLinearFold.FoldConvBatchNorms(g, units, replacements, removed, newInitializers, fresh);
        GraphRewrite.Apply(model, g, replacements, removed, newInitializers);
        return new GraphRmResult(model, reports, removed.Count(n => n.OpType == "BatchNormalization"));
    }

    static List<Match> FindMatches(OnnxGraph g, Dictionary<string, ConvUnit> units)
    {
        var matches = new List<Match>();
        foreach (var add in g.Order.Where(n => n.OpType is "Add" or "Sum" && n.Input.Count == 2 && n.Output.Count == 1))
        {
            if (!g.HasSingleUse(add.Output[0]) || g.ConsumersOf(add.Output[0])[0] is not { OpType: "Relu" } relu) continue;
            foreach (var (branch, shortcut) in new[] { (add.Input[0], add.Input[1]), (add.Input[1], add.Input[0]) })
            {
                var chain = new List<ConvUnit>();
                var relus = new List<NodeProto>();
                string value = branch;
                while (units.TryGetValue(value, out var unit) && g.HasSingleUse(unit.Output) && SingleUseInside(g, unit))
                {
                    chain.Insert(0, unit);
                    var before = g.ProducerOf(unit.Input);
                    if (before is { OpType: "Relu" } r && g.HasSingleUse(r.Output[0]) && units.ContainsKey(r.Input[0]))
                    {
                        relus.Insert(0, r);
                        value = r.Input[0];
                        continue;
                    }
                    break;
                }
                if (chain.Count < 2) continue;
                string x = chain[0].Input;
                ConvUnit? projection = null;
                if (shortcut != x)
                {
                    if (!units.TryGetValue(shortcut, out projection) || !g.HasSingleUse(projection.Output)) continue;
                    if (projection.Input != x)
                    {
                        // ResNet-D: the projection reads an s x s, stride-s average pool of x.
                        if (g.ProducerOf(projection.Input) is not { OpType: "AveragePool" } p || p.Input[0] != x || !g.HasSingleUse(projection.Input)
                            || PoolWindow(p) is not int s) continue;
                        matches.Add(new Match(add, relu, x, chain, relus, projection, p, s));
                        break;
                    }
                }
                matches.Add(new Match(add, relu, x, chain, relus, projection));
                break;
            }
        }
        return matches;
    }

    /// <summary>Why an s x s average-pooled shortcut cannot be exact on a block input of the fixed <paramref name="size"/> (partial windows), or null.</summary>
    internal static string? PoolProblem(int s, (long H, long W)? size) =>
        size is { } fixedSize && (fixedSize.H % s != 0 || fixedSize.W % s != 0)
            ? $"the shortcut's {s}x{s} average pool has partial windows on the block's {fixedSize.H}x{fixedSize.W} input (ceil_mode), which no conv kernel reproduces"
            : null;

    /// <summary>The condition a block with an s x s average-pooled shortcut is exact under, where the graph leaves H and W dynamic.</summary>
    internal static string PoolCondition(int s) =>
        $"exact where the block's input has H and W divisible by {s} (the shortcut's average pool then has whole windows)";

    /// <summary>s for an AveragePool of an s x s window, stride s and no padding (count_include_pad then does not matter), else null.</summary>
    internal static int? PoolWindow(NodeProto pool)
    {
        var kernel = pool.Ints("kernel_shape");
        var strides = pool.Ints("strides");
        string autoPad = pool.AutoPad();
        if (kernel is not [var kh, var kw] || kh != kw || kh < 2 || !strides.SequenceEqual(kernel)) return null;
        if (pool.Ints("pads").Any(p => p != 0) || autoPad is not ("NOTSET" or "" or "VALID")) return null;
        return (int)kh;
    }

    /// <summary>The conv's own output feeds only its BN (where folded), so removing the pair loses nothing.</summary>
    static bool SingleUseInside(OnnxGraph g, ConvUnit u) => u.BatchNorm is null || g.HasSingleUse(u.Conv.Output[0]);

    /// <summary>x is provably >= 0: a Relu's output, or a MaxPool of such a value.</summary>
    internal static bool IsNonNegative(OnnxGraph g, string value)
    {
        for (int depth = 0; depth < 16; depth++)
        {
            var p = g.ProducerOf(value);
            if (p is null) return false;
            if (p.OpType == "Relu") return true;
            if (p.OpType != "MaxPool") return false;
            value = p.Input[0];
        }
        return false;
    }
}
