using Onnx;
using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// ECA gates as PyTorch exports them, rewritten into the SE form the carry pass takes (exactly, see
/// <see cref="ChannelConvGate"/>), the form a lowered ECA checkpoint has too.
/// <code>
/// before: h -> ReduceMean(H, W) -> Reshape [N, 1, C] -> Conv 1-d (k, pad k/2, no bias) -> Sigmoid -> Reshape [N, C, 1, 1] (-> Expand) -> Mul(h, .)
/// after:  h -> ReduceMean(H, W) -> Conv 1x1 [W; -W] -> Relu -> Conv 1x1 [I, -I] -> Sigmoid -> Mul(h, .)
/// </code>
/// Conditions: each value on the gate's path is read once; the 1-d conv has a constant weight [1, 1, k] with k odd,
/// padding k/2 on both sides, stride and dilation 1, one group, no bias; C is known from the conv (or conv + BN) that
/// makes h. The Shape arithmetic that fed the Reshapes and the Expand is left unread, for <see cref="DeadNodes"/>.
/// Returns the gates rewritten.
/// </summary>
internal static class EcaGates
{
    public static int Run(ModelProto model, string file) => GraphRewrite.Round(model, file, (g, edits) =>
    {
        var fresh = g.FreshNames();
        int count = 0;
        foreach (var mul in g.Order.Where(n => n.OpType == "Mul" && n.Input.Count == 2))
        {
            foreach (var (h, e) in new[] { (mul.Input[0], mul.Input[1]), (mul.Input[1], mul.Input[0]) })
            {
                if (Match(g, h, e) is not { } gate) continue;
                string name = fresh(OnnxGraph.NodeName(mul) + "_eca");
                var (fc1, fc2) = ChannelConvGate.AsSqueezeExcite(OnnxTensors.ToTensor(gate.Kernel, file), gate.Channels);
                string Init(string suffix, Tensor t)
                {
                    var proto = OnnxTensors.FromTensor(fresh($"{name}_{suffix}"), t);
                    edits.Initializers.Add(proto);
                    return proto.Name;
                }
                ConvLayer OneByOne(Tensor w) => new(w.to_type(ScalarType.Float32), zeros(w.shape[0]), 1, 1, Padding2d.All(0), 1);
                var (c1, c2) = (OneByOne(fc1), OneByOne(fc2));
                string mean = fresh($"{name}_mean"), signs = fresh($"{name}_signs"), relu = fresh($"{name}_relu"), conv = fresh($"{name}_conv"), sigmoid = fresh($"{name}_gate");
                edits.Replacements[mul] = new List<NodeProto>
                {
                    OnnxNodes.Unary("ReduceMean", mean, h, mean, OnnxNodes.Ints("axes", 2, 3), OnnxNodes.Int("keepdims", 1)),
                    OnnxNodes.Conv(signs, mean, Init("fc1_weight", c1.Weight), Init("fc1_bias", c1.Bias), signs, c1),
                    OnnxNodes.Unary("Relu", relu, signs, relu),
                    OnnxNodes.Conv(conv, relu, Init("fc2_weight", c2.Weight), Init("fc2_bias", c2.Bias), conv, c2),
                    OnnxNodes.Unary("Sigmoid", sigmoid, conv, sigmoid),
                    new NodeProto { Name = mul.Name, OpType = "Mul", Input = { h, sigmoid }, Output = { mul.Output[0] } },
                };
                foreach (var n in gate.Nodes) edits.Removed.Add(n);
                count++;
                break;
            }
        }
        return count;
    });

    sealed record Gate(List<NodeProto> Nodes, TensorProto Kernel, long Channels);

    /// <summary>The ECA gate on <paramref name="h"/> whose last value is <paramref name="e"/>, or null.</summary>
    static Gate? Match(OnnxGraph g, string h, string e)
    {
        var nodes = new List<NodeProto>();
        NodeProto? Single(string value, string op)
        {
            if (!g.HasSingleUse(value) || g.ProducerOf(value) is not { } p || p.OpType != op) return null;
            nodes.Add(p);
            return p;
        }
        string v = e;
        if (g.ProducerOf(v) is { OpType: "Expand" } && Single(v, "Expand") is { } expand) v = expand.Input[0];
        if (Single(v, "Reshape") is not { } back || Single(back.Input[0], "Sigmoid") is not { } sigmoid) return null;
        if (Single(sigmoid.Input[0], "Conv") is not { } conv || Single(conv.Input[0], "Reshape") is not { } forth) return null;
        if (Single(forth.Input[0], "ReduceMean") is not { } mean || mean.Input[0] != h) return null;
        if (mean.Attribute.FirstOrDefault(a => a.Name == "axes") is not { } axes || !axes.Ints.SequenceEqual(new long[] { 2, 3 })) return null;
        if (conv.Input.Count > 2 && conv.Input[2].Length > 0 || !g.Initializers.TryGetValue(conv.Input[1], out var kernel)) return null;
        if (kernel.Dims is not [1, 1, var k] || k % 2 == 0) return null;
        if (!conv.Ints("pads").SequenceEqual(new[] { k / 2, k / 2 }) || conv.Ints("strides").Any(s => s != 1) || conv.Ints("dilations").Any(d => d != 1)
            || conv.Int("group", 1) != 1 || conv.AutoPad() is not ("" or "NOTSET")) return null;
        return Channels(g, h) is long c ? new Gate(nodes, kernel, c) : null;
    }

    /// <summary>Channels of <paramref name="h"/> where a conv with a constant weight makes it (through a BatchNormalization).</summary>
    static long? Channels(OnnxGraph g, string h)
    {
        var p = g.ProducerOf(h);
        if (p is { OpType: "BatchNormalization" }) p = g.ProducerOf(p.Input[0]);
        return p is { OpType: "Conv" } && g.Initializers.TryGetValue(p.Input[1], out var w) && w.Dims.Count == 4 ? w.Dims[0] : null;
    }
}
