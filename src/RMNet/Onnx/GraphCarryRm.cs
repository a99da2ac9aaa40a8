using Onnx;
using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// Graph-level RM for residual blocks whose input may be negative or whose branch does not start with a conv:
/// pre-activation ResNets (BN, ReLU, conv ...), InsightFace IResNet (BN, conv, PReLU, conv), MobileNetV2
/// (conv, Clip, depthwise conv, Clip, conv), and ResNet-style blocks after a non-ReLU activation.
/// <para>
/// A block is Add|Sum(branch(x), shortcut) where the branch, read from x, is an optional BatchNormalization and
/// an optional activation, then convs (BN folded) with at most one activation (Relu, PRelu, LeakyRelu, Clip)
/// between them, ending in a conv; the shortcut is x, or a 1x1 conv of x. Whatever follows the sum is kept.
/// </para>
/// The block input is carried in extra channels: a 1x1 conv first emits [x ; BN(x)] where the branch starts
/// with BN or a grouped conv; every conv passes the carried channels on with Dirac kernels (one-channel groups in
/// depthwise convs); every activation becomes per-channel with the identity on them (PRelu slope 1, or Max/Min
/// with infinite bounds for Clip); the last conv adds the shortcut. Exact for any sign of x, float64 math.
/// A Relu stays a Relu where x is provably non-negative (a Relu's output). Under the sign split
/// (<see cref="Rm.NegativeInputMode.Split"/>) a branch whose activations are Relu, PRelu or LeakyRelu carries x as
/// [x ; -x] instead, which the first activation (a ReLU on them) turns into relu(x) and relu(-x), and the last conv
/// merges with +I and -I (relu(x) - relu(-x) = x): twice the carried channels, and no PRelu where the network had a
/// Relu. Clip branches (MobileNetV2) carry x with infinite bounds in both modes (the split would change nothing the bounds do not). An SE block on such an input with a Relu
/// between each two convs (SE-ResNet) is made by ResNet's own block transform (<see cref="Rm.ResidualChainRm"/>,
/// grouped or dense middle convs); SE then gates the branch channels and a 1x1
/// conv adds the shortcut.
/// <code>
///   x --BN--Relu--Conv+BN--PRelu--Conv--+                   x --Conv1x1 [x ; BN(x)]--PRelu(1 | 0)--Conv [x ; conv1]--PRelu(1 | a)--Conv [conv2 + x]--> y
///   x ----------------------------------+--Add--> y   becomes
/// </code>
/// </summary>
internal static class GraphCarryRm
{
    static readonly HashSet<string> Activations = new() { "Relu", "PRelu", "LeakyRelu", "Clip" };

    sealed record Op(ConvUnit? Conv, NodeProto? Node, SqueezeExcite? Gate = null);

    /// <summary>A squeeze-and-excitation gate on the branch's last conv output: its nodes and the two 1x1 convs.</summary>
    sealed record SqueezeExcite(List<NodeProto> Nodes, ConvUnit Fc1, ConvUnit Fc2);

    /// <summary>Transforms <paramref name="model"/> in place; returns it and a report per block found.</summary>
    /// <param name="model">The model, rewritten in place.</param>
    /// <param name="file">Names the model in errors.</param>
    /// <param name="mode">The form of middle convs where a block is an SE-ResNet block (ResNet's RM; the carry itself is dense).</param>
    /// <param name="negative">How a block input that may be negative is carried: PRelu slope-1 channels, or the sign split.</param>
    /// <param name="blockDone">Called after each block.</param>
    public static (ModelProto Model, List<GraphBlockReport> Blocks) Run(ModelProto model, string file, Rm.RmMode mode = Rm.RmMode.Grouped,
        Rm.NegativeInputMode negative = Rm.NegativeInputMode.PRelu, Action? blockDone = null)
    {
        // In place, not on a copy (a dense ResNet-50 is 1.1 GB a copy); the pass's float64 tensors end with its scope.
        using var scope = TorchSharp.torch.NewDisposeScope();
        var g = new OnnxGraph(model.Graph, file);
        var units = ConvNodes.Read(g);
        var sizes = StaticShapes.Spatial(g);
        var reports = new List<GraphBlockReport>();
        var replacements = new Dictionary<NodeProto, List<NodeProto>>();
        var removed = new HashSet<NodeProto>();
        var initializers = new List<TensorProto>();
        var fresh = g.FreshNames();
        string Init(string stem, Tensor t)
        {
            var proto = OnnxTensors.FromTensor(fresh(stem), t);
            initializers.Add(proto);
            return proto.Name;
        }

        foreach (var add in g.Order.Where(n => n.OpType is "Add" or "Sum" && n.Input.Count == 2 && n.Output.Count == 1))
        {
            foreach (var (operand, shortcut) in new[] { (add.Input[0], add.Input[1]), (add.Input[1], add.Input[0]) })
            {
                var se = MatchSqueezeExcite(g, units, operand, out string branch);
                var ops = Walk(g, units, branch, out string x, start: se is not null);
                if (ops.Count(o => o.Conv is not null) < 1 || ops[^1].Conv is null) continue;
                ConvUnit? projection = null;
                NodeProto? pool = null;
                if (shortcut != x && (!units.TryGetValue(shortcut, out projection) || !g.HasSingleUse(shortcut))) continue;
                if (projection is not null && projection.Input != x)
                {
                    // ResNet-D: the projection reads an s x s, stride-s average pool of x (taken by the SE-ResNet form below only).
                    if (g.ProducerOf(projection.Input) is not { OpType: "AveragePool" } p || p.Input[0] != x || !g.HasSingleUse(projection.Input)
                        || GraphRm.PoolWindow(p) is null) continue;
                    pool = p;
                }
                string name = OnnxGraph.NodeName(add);
                // The block's weights are first read here (a block's units belong to it alone), and what is computed from them
                // ends with this scope once written as initializers: an IResNet-100's float64 kernels are gigabytes.
                using var blockScope = TorchSharp.torch.NewDisposeScope();
                string? reason = Check(ops, projection, sizes.TryGetValue(x, out var size) ? size : null, pool is null ? 1 : GraphRm.PoolWindow(pool)!.Value)
                    ?? (pool is null ? null : GraphRm.PoolProblem(GraphRm.PoolWindow(pool)!.Value, sizes.TryGetValue(x, out var fixedSize) ? fixedSize : null));
                var convCount = ops.Count(o => o.Conv is not null);
                if (reason is not null)
                {
                    reports.Add(new GraphBlockReport(name, projection is null ? "identity" : "projection", convCount, false, reason));
                    blockDone?.Invoke();
                    break;
                }
                int zeroChannels = 0;
                var nodes = Build(g, ops, projection, se, x, add.Output[0], name, fresh, Init, mode, sizes.TryGetValue(x, out var xSize) ? xSize : null,
                    pool is null ? 1 : GraphRm.PoolWindow(pool)!.Value, negative, ref zeroChannels);
                string shortcutKind = pool is not null ? "avg-pool projection" : projection is null ? "identity" : "projection";
                blockDone?.Invoke();
                if (nodes is null)
                {
                    reports.Add(new GraphBlockReport(name, shortcutKind, convCount, false, "branch layout not supported"));
                    break;
                }
                replacements[add] = nodes;
                foreach (var o in ops)
                {
                    if (o.Conv is not null) foreach (var n in o.Conv.Nodes) removed.Add(n);
                    if (o.Node is not null) removed.Add(o.Node);
                    if (o.Gate is not null) foreach (var n in o.Gate.Nodes) removed.Add(n);
                }
                if (projection is not null) foreach (var n in projection.Nodes) removed.Add(n);
                if (pool is not null) removed.Add(pool);
                if (se is not null) foreach (var n in se.Nodes) removed.Add(n);
                reports.Add(new GraphBlockReport(name, shortcutKind, convCount, true, null)
                {
                    Condition = pool is null || sizes.ContainsKey(x) ? null : GraphRm.PoolCondition(GraphRm.PoolWindow(pool)!.Value),
                    ZeroChannels = zeroChannels,
                });
                break;
            }
        }
        if (replacements.Count == 0) return (model, reports);
        GraphRewrite.Apply(model, g, replacements, removed, initializers);
        return (model, reports);
    }

    /// <summary>
    /// Mul(h, Sigmoid(fc2(Relu(fc1(GlobalAveragePool|ReduceMean(h)))))) at <paramref name="value"/>, fc1/fc2 1x1 convs
    /// with constant weights; <paramref name="h"/> is the gated value (or <paramref name="value"/> where there is no SE).
    /// </summary>
    static SqueezeExcite? MatchSqueezeExcite(OnnxGraph g, Dictionary<string, ConvUnit> units, string value, out string h)
    {
        h = value;
        if (!g.HasSingleUse(value) || g.ProducerOf(value) is not { OpType: "Mul" } mul || mul.Input.Count != 2) return null;
        foreach (var (gated, gate) in new[] { (mul.Input[0], mul.Input[1]), (mul.Input[1], mul.Input[0]) })
        {
            if (g.ProducerOf(gate) is not { OpType: "Sigmoid" } sigmoid || !g.HasSingleUse(gate)) continue;
            if (!units.TryGetValue(sigmoid.Input[0], out var fc2) || fc2.BatchNorm is not null) continue;
            if (g.ProducerOf(fc2.Input) is not { OpType: "Relu" } relu || !units.TryGetValue(relu.Input[0], out var fc1) || fc1.BatchNorm is not null) continue;
            if (g.ProducerOf(fc1.Input) is not { OpType: "GlobalAveragePool" or "ReduceMean" } pool || pool.Input[0] != gated) continue;
            if (pool.OpType == "ReduceMean" && (pool.Attribute.FirstOrDefault(a => a.Name == "keepdims") is { I: 0 }
                || pool.Attribute.FirstOrDefault(a => a.Name == "axes") is not { } axes || !axes.Ints.SequenceEqual(new long[] { 2, 3 }))) continue;
            // The gated value feeds exactly the pool and the Mul.
            if (g.ConsumersOf(gated).Count != 2 || g.Graph.Output.Any(o => o.Name == gated)) continue;
            h = gated;
            return new SqueezeExcite(new List<NodeProto> { mul, sigmoid, relu, pool, fc1.Conv, fc2.Conv }, fc1, fc2);
        }
        return null;
    }

    /// <summary>
    /// The branch's ops from the block input forward; <paramref name="x"/> is where the walk stopped. With
    /// <paramref name="start"/> the first value is known to belong to the branch (an SE gate reads it too).
    /// </summary>
    static List<Op> Walk(OnnxGraph g, Dictionary<string, ConvUnit> units, string value, out string x, bool start = false)
    {
        var ops = new List<Op>();
        while (start || g.HasSingleUse(value))
        {
            start = false;
            if (units.TryGetValue(value, out var unit) && (unit.BatchNorm is null || g.HasSingleUse(unit.Conv.Output[0])))
            {
                ops.Insert(0, new Op(unit, null));
                value = unit.Input;
                continue;
            }
            // An SE gate inside the branch (RegNetY: after the 3x3 conv's activation, before the last conv): the walk goes on
            // from the gated value, which the gate's pool reads too.
            if (ops.Count > 0 && MatchSqueezeExcite(g, units, value, out string gated) is { } gate)
            {
                ops.Insert(0, new Op(null, null, gate));
                value = gated;
                start = true;
                continue;
            }
            var p = g.ProducerOf(value);
            if (p is not null && (Activations.Contains(p.OpType) || p.OpType == "BatchNormalization") && p.Output.Count(o => o.Length > 0) == 1)
            {
                ops.Insert(0, new Op(null, p));
                value = p.Input[0];
                continue;
            }
            break;
        }
        x = value;
        return ops;
    }

    static string? Check(List<Op> ops, ConvUnit? projection, (long H, long W)? inputSize, int shortcutPool = 1)
    {
        int firstConv = ops.FindIndex(o => o.Conv is not null);
        var pre = ops.Take(firstConv).Select(o => o.Node!.OpType).ToList();
        bool preOk = pre.Count == 0 || pre.SequenceEqual(new[] { "BatchNormalization" }) || (pre.Count == 1 && Activations.Contains(pre[0]))
            || (pre.Count == 2 && pre[0] == "BatchNormalization" && Activations.Contains(pre[1]));
        if (!preOk) return $"ops before the first conv ({string.Join(", ", pre)}) are not BN and/or one activation";
        for (int i = firstConv; i < ops.Count - 1; i++)
            if (ops[i].Node is not null && (ops[i + 1].Node is not null || !Activations.Contains(ops[i].Node!.OpType)))
                return $"'{ops[i].Node!.OpType}' between convs: only one activation is supported there";
        foreach (var c in ops.Where(o => o.Conv is not null).Select(o => o.Conv!).Append(projection).OfType<ConvUnit>())
            if (c.Problem is not null) return c.Problem;
        if (Rm.ResidualChainRm.AlignmentProblem(ops.Where(o => o.Conv is not null).Select(o => o.Conv!.Fused).ToList(), inputSize) is string problem)
            return problem;
        int stride = ops.Where(o => o.Conv is not null).Aggregate(1, (s, o) => s * o.Conv!.Fused.Stride);
        if (projection is null)
        {
            if (stride != 1) return $"identity shortcut around a branch of stride {stride}";
        }
        else if (projection.Fused.KernelH != 1 || projection.Fused.KernelW != 1 || projection.Fused.Stride * shortcutPool != stride || projection.Fused.Padding != Padding2d.All(0))
            return shortcutPool > 1 ? $"the {shortcutPool}x{shortcutPool} average pool and 1x1 projection do not stride as the branch does"
                : "projection shortcut is not a 1x1 conv with the branch's stride";
        return null;
    }

    /// <summary>The plain nodes, or null where shapes do not fit.</summary>
    static List<NodeProto>? Build(OnnxGraph g, List<Op> ops, ConvUnit? projection, SqueezeExcite? se, string x, string output, string name,
        Func<string, string> fresh, Func<string, Tensor, string> init, Rm.RmMode mode, (long H, long W)? inputSize, int shortcutPool,
        Rm.NegativeInputMode negative, ref int zeroChannels)
    {
        var nodes = new List<NodeProto>();
        int firstConv = ops.FindIndex(o => o.Conv is not null);
        var first = ops[firstConv].Conv!.Fused;
        long c = first.InChannels;                      // carried channels: the block input
        if (projection is not null && projection.Fused.InChannels != c) return null;
        string current = x;
        long features = c;                              // feature channels after the carried ones
        bool shared = true;                              // carried and feature channels are the same tensor (no entry conv)
        // Carried values that are provably non-negative (x is a Relu's output) pass a Relu unchanged: a Relu then stays
        // a Relu on all channels; otherwise it becomes a PRelu with slope 1 on them.
        bool nonNegative = GraphRm.IsNonNegative(g, x);
        // The sign split needs an activation to turn [x ; -x] into relu(x) and relu(-x) before the merge subtracts them
        // (without one the merge would give 2x); with Clip it would change nothing the bounds do not already do.
        var activations = ops.Where(o => o.Node is not null && Activations.Contains(o.Node.OpType)).Select(o => o.Node!.OpType).ToList();
        bool split = negative == Rm.NegativeInputMode.Split && !nonNegative && activations.Count > 0 && !activations.Contains("Clip");
        long carried = split ? 2 * c : c;             // channels the block input takes: x, or x and -x

        // Entry: [x ; BN(x)] as one 1x1 conv, where the branch starts with BN or a grouped conv.
        var pre = ops.Take(firstConv).Select(o => o.Node!).ToList();
        if (pre.Count > 0 || first.Groups > 1)
        {
            var identity = eye(c, dtype: ScalarType.Float64);
            var eye2 = cat(split ? new[] { identity, -identity, identity } : new[] { identity, identity }, 0).reshape(carried + c, c, 1, 1);
            var bias = zeros(carried + c, dtype: ScalarType.Float64);
            if (pre.FirstOrDefault(n => n.OpType == "BatchNormalization") is { } bn)
            {
                var p = bn.Input.Skip(1).Take(4).Select(i => g.Initializers.TryGetValue(i, out var t) ? OnnxTensors.ToTensor(t, g.File).flatten() : null).ToArray();
                if (p.Any(t => t is null)) return null;
                double eps = bn.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
                var scale = Weights.BatchNormFusion.Scale(new Weights.BatchNormWeights(p[0]!, p[1]!, p[2]!, p[3]!, eps));
                eye2[TensorIndex.Slice(carried)] = eye2[TensorIndex.Slice(carried)] * scale.reshape(-1, 1, 1, 1);
                bias[TensorIndex.Slice(carried)] = p[1]! - p[2]! * scale;
            }
            current = EmitConv(nodes, current, eye2, bias, 1, Padding2d.All(0), 1, $"{name}_carry_entry", fresh, init);
            shared = false;
            var act = pre.FirstOrDefault(n => Activations.Contains(n.OpType));
            if (act is not null)
            {
                if (EmitActivation(g, nodes, act, current, carried, c, nonNegative, split, $"{name}_carry_entry_act", fresh, init) is not string activated) return null;
                current = activated;
            }
        }

        var midGate = ops.FirstOrDefault(o => o.Gate is not null)?.Gate;
        // The convs before the gate: it gates the output (after its activation) of the last of them.
        int gateAfter = ops.TakeWhile(o => o.Gate is null).Count(o => o.Conv is not null) - 1;
        var convOps = ops.Skip(firstConv).Where(o => o.Gate is null).ToList();
        // An SE block on a non-negative input whose convs have a Relu between each two (SE-ResNet): the ResNet block
        // transform itself (ResidualChainRm, as GraphRm calls it), so middle convs take the RM form
        // asked for (grouped or dense) and a Relu follows each conv but the last, which passes the input on to SE.
        bool reluChain = convOps.Count % 2 == 1 && convOps.Select((o, i) => i % 2 == 0 ? o.Conv is not null : o.Node?.OpType == "Relu").All(ok => ok);
        if (midGate is not null)
            return se is null && nonNegative && pre.Count == 0 && reluChain && gateAfter >= 0
                ? MidBranchGate(convOps, gateAfter, midGate, projection, output, name, fresh, init, mode, inputSize, shortcutPool, nodes, current, ref zeroChannels)
                : null;
        if (se is not null && nonNegative && pre.Count == 0 && reluChain && convOps.Count >= 3)
        {
            var chain = convOps.Where(o => o.Conv is not null).Select(o => o.Conv!.Fused).ToList();
            Rm.RmBlock block;
            try { block = Rm.ResidualChainRm.Transform(chain, projection?.Fused, mode, mergeShortcut: false, inputSize: inputSize, shortcutPool: shortcutPool); }
            catch (RmException) { return null; }
            zeroChannels = block.ZeroChannels;
            current = EmitReluChain(block, nodes, current, name, fresh, init, lastOutput: null);
            long branch = chain[^1].OutChannels;
            return SqueezeExciteMerge(nodes, current, block.Convs[^1].OutChannels - branch, c, branch, projection, se, output, name, fresh, init) ? nodes : null;
        }
        for (int k = 0; k < convOps.Count; k++)
        {
            var op = convOps[k];
            if (op.Node is not null)
            {
                if (EmitActivation(g, nodes, op.Node, current, carried, features, nonNegative, split, $"{name}_carry_act{k}", fresh, init) is not string activated) return null;
                current = activated;
                continue;
            }
            var conv = op.Conv!.Fused;
            bool last = k == convOps.Count - 1 && se is null;
            long kh = conv.KernelH, kw = conv.KernelW, tapH = conv.Padding.Top, tapW = conv.Padding.Left;
            long inCarried = shared ? 0 : carried;         // where the conv's own input starts
            bool depthwise = conv.Groups > 1 && conv.Groups == conv.InChannels && conv.OutChannels == conv.InChannels && !shared;
            Tensor weight, bias;
            int groups = 1;
            if (last)
            {
                weight = zeros(new[] { conv.OutChannels, inCarried + conv.InChannels, kh, kw }, dtype: ScalarType.Float64);
                weight[TensorIndex.Colon, TensorIndex.Slice(inCarried)] = conv.DenseKernel();
                bias = conv.Weights.BiasOrZeros();
                if (projection is null && conv.OutChannels != c) return null;
                MergeShortcut(weight, projection, c, split, kh, kw, tapH, tapW);
                if (projection is not null) bias = bias + projection.Fused.Weights.BiasOrZeros();
                EmitConv(nodes, current, weight, bias, conv.Stride, conv.Padding, 1, $"{name}_carry_merge", _ => output, init);
                return nodes;
            }
            if (depthwise)
            {
                weight = zeros(new[] { carried + conv.OutChannels, 1, kh, kw }, dtype: ScalarType.Float64);
                weight[TensorIndex.Slice(0, carried), 0, tapH, tapW] = ones(carried, dtype: ScalarType.Float64);
                weight[TensorIndex.Slice(carried)] = conv.Weights.Weight;
                groups = (int)(carried + conv.OutChannels);
            }
            else
            {
                weight = zeros(new[] { carried + conv.OutChannels, inCarried + conv.InChannels, kh, kw }, dtype: ScalarType.Float64);
                if (shared)
                {
                    // The conv reads x itself: its first rows copy x (and -x under the split).
                    PutDirac(weight, 0, 0, c, tapH, tapW);
                    if (split) PutDirac(weight, c, 0, c, tapH, tapW, -1.0);
                }
                else PutDirac(weight, 0, 0, carried, tapH, tapW);
                weight[TensorIndex.Slice(carried), TensorIndex.Slice(inCarried)] = conv.DenseKernel();
            }
            bias = cat(new[] { zeros(carried, dtype: ScalarType.Float64), conv.Weights.BiasOrZeros() }, 0);
            current = EmitConv(nodes, current, weight, bias, conv.Stride, conv.Padding, groups, $"{name}_carry_conv{k}", fresh, init);
            features = conv.OutChannels;
            shared = false;
        }
        if (se is null) return null;
        return SqueezeExciteMerge(nodes, current, carried, c, features, projection, se, output, name, fresh, init, split) ? nodes : null;
    }

    /// <summary>
    /// A ReLU chain with an SE gate inside it (RegNetY: a, b, SE, c), on a non-negative input: ResNet's block transform
    /// with the shortcut merged into the last conv, and the gate applied to the branch channels only of the conv it
    /// follows (the carried channels before them get a gate of exactly 1, see <see cref="OnnxNodes.SqueezeExcite"/>).
    /// </summary>
    static List<NodeProto>? MidBranchGate(List<Op> convOps, int gateAfter, SqueezeExcite gate, ConvUnit? projection, string output, string name,
        Func<string, string> fresh, Func<string, Tensor, string> init, Rm.RmMode mode, (long H, long W)? inputSize, int shortcutPool,
        List<NodeProto> nodes, string current, ref int zeroChannels)
    {
        var chain = convOps.Where(o => o.Conv is not null).Select(o => o.Conv!.Fused).ToList();
        if (chain.Count < 2 || gateAfter >= chain.Count - 1) return null;
        Rm.RmBlock block;
        try { block = Rm.ResidualChainRm.Transform(chain, projection?.Fused, mode, inputSize: inputSize, shortcutPool: shortcutPool); }
        catch (RmException) { return null; }
        zeroChannels = block.ZeroChannels;
        EmitReluChain(block, nodes, current, name, fresh, init, lastOutput: output, afterRelu: (i, value) =>
        {
            if (i != gateAfter) return value;
            string gated = fresh($"{name}_carry_se");
            OnnxNodes.SqueezeExcite(nodes, $"{name}_carry_se", value, gated, block.Convs[i].OutChannels - chain[i].OutChannels,
                (gate.Fc1.Fused.Weights.Weight, gate.Fc1.Fused.Weights.BiasOrZeros()), (gate.Fc2.Fused.Weights.Weight, gate.Fc2.Fused.Weights.BiasOrZeros()),
                (n, t) => init($"{name}_se_{n}", t));
            return gated;
        });
        return nodes;
    }

    /// <summary>
    /// The block's convs from <paramref name="current"/> with a Relu after each but the last (whose output is
    /// <paramref name="lastOutput"/> where given); <paramref name="afterRelu"/>(i, value) may add nodes after conv i's Relu
    /// and returns the value the chain goes on from. Returns the last conv's output.
    /// </summary>
    static string EmitReluChain(Rm.RmBlock block, List<NodeProto> nodes, string current, string name, Func<string, string> fresh,
        Func<string, Tensor, string> init, string? lastOutput, Func<int, string, string>? afterRelu = null)
    {
        for (int i = 0; i < block.Convs.Count; i++)
        {
            var layer = block.Convs[i];
            bool last = i == block.Convs.Count - 1;
            string convName = $"{name}_rm{i}", convOut = last && lastOutput is not null ? lastOutput : fresh(convName);
            nodes.Add(OnnxNodes.Conv(convName, current, init($"{convName}_weight", layer.Weight), init($"{convName}_bias", layer.Bias), convOut, layer));
            current = convOut;
            if (last) break;
            string reluOut = fresh($"{convName}_relu");
            nodes.Add(OnnxNodes.Unary("Relu", $"{convName}_relu", current, reluOut));
            current = afterRelu?.Invoke(i, reluOut) ?? reluOut;
        }
        return current;
    }

    /// <summary>
    /// SE gates the branch channels only (those after the <paramref name="offset"/> carried ones: the block input's
    /// <paramref name="c"/> channels, then any zero channels); then a 1x1 conv adds the shortcut to them. SE keeps its
    /// gating branch. False where the shapes do not fit.
    /// </summary>
    static bool SqueezeExciteMerge(List<NodeProto> nodes, string current, long offset, long c, long features, ConvUnit? projection, SqueezeExcite se,
        string output, string name, Func<string, string> fresh, Func<string, Tensor, string> init, bool split = false)
    {
        string gated = fresh($"{name}_carry_se");
        OnnxNodes.SqueezeExcite(nodes, $"{name}_carry_se", current, gated, offset,
            (se.Fc1.Fused.Weights.Weight, se.Fc1.Fused.Weights.BiasOrZeros()), (se.Fc2.Fused.Weights.Weight, se.Fc2.Fused.Weights.BiasOrZeros()),
            (n, t) => init($"{name}_se_{n}", t));
        var merge = zeros(new[] { features, offset + features, 1, 1 }, dtype: ScalarType.Float64);
        PutDirac(merge, 0, offset, features, 0, 0);
        if (projection is null && features != c) return false;
        MergeShortcut(merge, projection, c, split, 1, 1, 0, 0);
        var mergeBias = projection is null ? zeros(features, dtype: ScalarType.Float64) : projection.Fused.Weights.BiasOrZeros();
        EmitConv(nodes, gated, merge, mergeBias, 1, Padding2d.All(0), 1, $"{name}_carry_merge", _ => output, init);
        return true;
    }

    /// <summary>
    /// Adds the shortcut to the carried columns of the merging conv's kernel: +I (identity) or the 1x1 projection at the
    /// centre tap, on x's columns, and under the sign split its negative on -x's columns (which hold relu(-x) by then).
    /// </summary>
    static void MergeShortcut(Tensor weight, ConvUnit? projection, long c, bool split, long kh, long kw, long tapH, long tapW)
    {
        if (projection is null)
        {
            PutDirac(weight, 0, 0, c, tapH, tapW);
            if (split) PutDirac(weight, 0, c, c, tapH, tapW, -1.0);
            return;
        }
        var kernel = Kernels.PadOneByOne(projection.Fused.DenseKernel(), kh, kw, tapH, tapW);
        weight[TensorIndex.Colon, TensorIndex.Slice(0, c)] += kernel;
        if (split) weight[TensorIndex.Colon, TensorIndex.Slice(c, 2 * c)] -= kernel;
    }

    static void PutDirac(Tensor weight, long firstRow, long firstCol, long count, long tapH, long tapW, double value = 1.0) =>
        Kernels.PutDirac(weight, firstRow, firstCol, count, tapH, tapW, value);

    static string EmitConv(List<NodeProto> nodes, string input, Tensor weight, Tensor bias, int stride, Padding2d padding, int groups, string name,
        Func<string, string> fresh, Func<string, Tensor, string> init)
    {
        var layer = new ConvLayer(weight.to_type(ScalarType.Float32), bias.to_type(ScalarType.Float32), stride, stride, padding, groups);
        string output = fresh(name);
        nodes.Add(OnnxNodes.Conv(name, input, init($"{name}_weight", layer.Weight), init($"{name}_bias", layer.Bias), output, layer));
        return output;
    }

    /// <summary>
    /// The activation applied per channel: identity on the <paramref name="carried"/> first channels, or under the sign
    /// <paramref name="split"/> a ReLU on them (slope 0), which turns [x ; -x] into relu(x) and relu(-x) and passes those on.
    /// </summary>
    static string? EmitActivation(OnnxGraph g, List<NodeProto> nodes, NodeProto act, string input, long carried, long features, bool carriedNonNegative,
        bool split, string name, Func<string, string> fresh, Func<string, Tensor, string> init)
    {
        string output = fresh(name);
        Tensor Slopes(Tensor own) => cat(new[] { split ? zeros(carried) : ones(carried), own.to_type(ScalarType.Float32).flatten().expand(features) }, 0).reshape(-1, 1, 1);
        switch (act.OpType)
        {
            case "Relu" when carriedNonNegative || split:
                nodes.Add(OnnxNodes.Unary("Relu", name, input, output));
                return output;
            case "Relu":
                nodes.Add(new NodeProto { Name = name, OpType = "PRelu", Input = { input, init($"{name}_slope", Slopes(zeros(1))) }, Output = { output } });
                return output;
            case "LeakyRelu":
                float alpha = act.Attribute.FirstOrDefault(a => a.Name == "alpha")?.F ?? 0.01f;
                nodes.Add(new NodeProto { Name = name, OpType = "PRelu", Input = { input, init($"{name}_slope", Slopes(full(1, alpha))) }, Output = { output } });
                return output;
            case "PRelu":
                if (!g.Initializers.TryGetValue(act.Input[1], out var slope)) return null;
                var own = OnnxTensors.ToTensor(slope, g.File).flatten();
                if (own.numel() != 1 && own.numel() != features) return null;
                nodes.Add(new NodeProto { Name = name, OpType = "PRelu", Input = { input, init($"{name}_slope", Slopes(own)) }, Output = { output } });
                return output;
            case "Clip":
                var (lo, hi) = ClipBounds(g, act);
                if (lo is null || hi is null) return null;
                var lower = cat(new[] { full(carried, float.NegativeInfinity), full(features, lo.Value) }, 0).reshape(-1, 1, 1);
                var upper = cat(new[] { full(carried, float.PositiveInfinity), full(features, hi.Value) }, 0).reshape(-1, 1, 1);
                string lowered = fresh($"{name}_max");
                nodes.Add(new NodeProto { Name = $"{name}_max", OpType = "Max", Input = { input, init($"{name}_lower", lower) }, Output = { lowered } });
                nodes.Add(new NodeProto { Name = $"{name}_min", OpType = "Min", Input = { lowered, init($"{name}_upper", upper) }, Output = { output } });
                return output;
            default:
                return null;
        }
    }

    /// <summary>Clip's bounds from attributes (opset &lt; 11) or constant inputs; infinite where absent.</summary>
    static (float? Lo, float? Hi) ClipBounds(OnnxGraph g, NodeProto clip)
    {
        float? Input(int i, float absent)
        {
            if (clip.Input.Count <= i || clip.Input[i].Length == 0) return absent;
            return g.Initializers.TryGetValue(clip.Input[i], out var t) ? OnnxTensors.ToTensor(t, g.File).flatten()[0].item<double>() is var v ? (float)v : null : null;
        }
        var minAttr = clip.Attribute.FirstOrDefault(a => a.Name == "min");
        var maxAttr = clip.Attribute.FirstOrDefault(a => a.Name == "max");
        return (minAttr is not null ? minAttr.F : Input(1, float.NegativeInfinity), maxAttr is not null ? maxAttr.F : Input(2, float.PositiveInfinity));
    }
}
