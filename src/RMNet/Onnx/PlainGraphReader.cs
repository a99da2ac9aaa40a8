using Onnx;
using RMNet.Plain;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// The back end from a plain graph (what the passes leave of a network with every join made plain) to a
/// <see cref="PlainModel"/>, so that the <c>.safetensors</c> and <c>.pth</c> writers and the TorchSharp module serve the
/// graph engine too. It reads one chain from the graph input to its output: Conv, Relu, PRelu, Clip or per-channel
/// Max/Min, MaxPool, GlobalAveragePool or ReduceMean over H and W, Flatten or Reshape to [N, C], Gemm, and the SE gate
/// as <see cref="OnnxNodes.SqueezeExcite"/> writes it. Anything else (a join left, a pool it does not know) is refused
/// with the node's name: such a graph is written as ONNX only.
/// </summary>
internal static class PlainGraphReader
{
    /// <summary>
    /// The plain model of <paramref name="model"/>; where <paramref name="layout"/> is given, each layer is tagged with the
    /// stage of the node it comes from (<see cref="Lowering.LoweredLayout.StagesOf"/>), for per-stage costs.
    /// </summary>
    public static PlainModel Read(ModelProto model, string file, Lowering.LoweredLayout? layout = null)
    {
        var g = new OnnxGraph(model.Graph, file);
        string current = model.Graph.Input.First(i => !g.Initializers.ContainsKey(i.Name)).Name;
        long inputChannels = model.Graph.Input.First(i => i.Name == current).Type.TensorType.Shape.Dim is { Count: 4 } dims && dims[1].DimValue > 0
            ? dims[1].DimValue
            // A dynamic channel dimension: what the first conv takes.
            : g.Order.FirstOrDefault(n => n.OpType == "Conv") is { } first && g.Initializers.TryGetValue(first.Input[1], out var w0)
                ? w0.Dims[1] * first.Int("group", 1)
                : throw Refuse(file, current, "the input's channels are neither fixed nor given by a first conv");
        var layers = new List<PlainLayer>();
        var sources = new List<string>();   // the node each layer comes from
        void Tag(NodeProto n)
        {
            while (sources.Count < layers.Count) sources.Add(OnnxGraph.NodeName(n));
        }
        string output = model.Graph.Output[0].Name;
        long channels = inputChannels;
        while (current != output)
        {
            var consumers = g.ConsumersOf(current);
            var node = consumers.Count == 1 ? consumers[0]
                : consumers.Count == 2 && consumers.Any(n => n.OpType is "GlobalAveragePool" or "ReduceMean") && consumers.Any(n => n.OpType == "Mul")
                    ? consumers.First(n => n.OpType is "GlobalAveragePool" or "ReduceMean")
                    : throw Refuse(file, current, $"'{current}' is read by {consumers.Count} nodes: not a single chain");
            if (consumers.Count == 2)
            {
                var (se, gated) = SqueezeExcite(g, node, current, channels, file);
                layers.Add(se);
                Tag(node);
                current = gated;
                continue;
            }
            Tensor Init(int input) => g.Initializers.TryGetValue(node.Input[input], out var t) ? OnnxTensors.ToTensor(t, file, ScalarType.Float32)
                : throw Refuse(file, node.Name, $"input {input} of '{node.Name}' is not a constant");
            switch (node.OpType)
            {
                case "Conv":
                {
                    var w = Init(1);
                    var b = node.Input.Count > 2 && node.Input[2].Length > 0 ? Init(2) : zeros(w.shape[0]);
                    var strides = node.Ints("strides") is { Length: 2 } s ? s : new long[] { 1, 1 };
                    var pads = node.Ints("pads") is { Length: 4 } p ? p : new long[4];
                    if (node.Ints("dilations").Any(d => d != 1)) throw Refuse(file, node.Name, "dilated conv");
                    layers.Add(new ConvLayer(w, b, (int)strides[0], (int)strides[1], new Padding2d((int)pads[0], (int)pads[1], (int)pads[2], (int)pads[3]), (int)node.Int("group", 1)));
                    channels = w.shape[0];
                    break;
                }
                case "Relu": layers.Add(new ReluLayer()); break;
                case "PRelu": layers.Add(new PReluLayer(Init(1).flatten())); break;
                case "Clip":
                    layers.Add(new ClampLayer(full(channels, Init(1).item<float>()), full(channels, Init(2).item<float>())));
                    break;
                case "Max" or "Min":
                {
                    var bound = Init(1).flatten();
                    if (bound.shape[0] == 1) bound = full(channels, bound.item<float>());
                    // Max then Min is one clamp: the Min completes the clamp the Max began.
                    if (node.OpType == "Min" && layers.Count > 0 && layers[^1] is ClampLayer { } open && open.Upper.isinf().all().item<bool>())
                        layers[^1] = open with { Upper = bound };
                    else layers.Add(node.OpType == "Max" ? new ClampLayer(bound, full(channels, float.PositiveInfinity)) : new ClampLayer(full(channels, float.NegativeInfinity), bound));
                    break;
                }
                case "MaxPool":
                {
                    var k = node.Ints("kernel_shape");
                    var s = node.Ints("strides") is { Length: 2 } st ? st : new long[] { 1, 1 };
                    var p = node.Ints("pads") is { Length: 4 } pd ? pd : new long[4];
                    if (k is not [var kh, var kw] || kh != kw || s[0] != s[1] || node.Int("ceil_mode", 0) != 0) throw Refuse(file, node.Name, "a MaxPool other than square, floor-mode");
                    layers.Add(new MaxPoolLayer((int)kh, (int)s[0], new Padding2d((int)p[0], (int)p[1], (int)p[2], (int)p[3])));
                    break;
                }
                case "GlobalAveragePool": layers.Add(new GlobalAvgPoolLayer()); break;
                case "ReduceMean" when node.Ints("axes").SequenceEqual(new long[] { 2, 3 }):
                    // keepdims=0 (x.mean((2, 3)) before a linear layer) also flattens.
                    layers.Add(new GlobalAvgPoolLayer());
                    if (node.Int("keepdims", 1) == 0) layers.Add(new FlattenLayer());
                    break;
                case "Flatten" or "Reshape": layers.Add(new FlattenLayer()); break;
                case "Gemm" when node.Int("transB", 0) == 1 && node.Float("alpha", 1) == 1:
                    layers.Add(new LinearLayer(Init(1), Init(2)));
                    channels = layers[^1] is LinearLayer l ? l.Weight.shape[0] : channels;
                    break;
                default:
                    throw Refuse(file, node.Name, $"'{node.OpType}' has no plain layer");
            }
            Tag(node);
            current = node.Output[0];
        }
        // A graph that fixes its input's H and W (a head that pools a fixed window) keeps doing so as a plain model.
        var inputDims = model.Graph.Input.First(i => i.Name == g.Graph.Input.First(v => !g.Initializers.ContainsKey(v.Name)).Name).Type.TensorType.Shape?.Dim;
        int? fixedSize = inputDims is { Count: 4 } d && d[2].DimValue > 0 && d[2].DimValue == d[3].DimValue ? (int)d[2].DimValue : null;
        return new PlainModel(layers, (int)inputChannels) { LayerStages = layout?.StagesOf(sources), FixedInputSize = fixedSize };
    }

    /// <summary>
    /// The SE gate <see cref="OnnxNodes.SqueezeExcite"/> writes, from its pool: fc1 (zero columns for the first
    /// <c>offset</c> channels), Relu, fc2 (zero rows, bias -100 for them), Sigmoid, an Add of 1 on them where offset &gt; 0,
    /// Mul; returns the layer and the gated value.
    /// </summary>
    static (SeLayer Layer, string Gated) SqueezeExcite(OnnxGraph g, NodeProto pool, string x, long channels, string file)
    {
        NodeProto Next(NodeProto n, string op) => g.ConsumersOf(n.Output[0]) is [{ } c] && c.OpType == op ? c : throw Refuse(file, n.Name, $"'{n.Name}' is not followed by {op} as an SE gate is");
        Tensor Const(NodeProto n, int i) => OnnxTensors.ToTensor(g.Initializers[n.Input[i]], file).to_type(ScalarType.Float32);
        var fc1 = Next(pool, "Conv");
        var relu = Next(fc1, "Relu");
        var fc2 = Next(relu, "Conv");
        var sigmoid = Next(fc2, "Sigmoid");
        long offset = 0;
        var after = g.ConsumersOf(sigmoid.Output[0]) is [{ OpType: "Add" } add] ? add : null;
        if (after is not null)
        {
            var pass = Const(after, after.Input[0] == sigmoid.Output[0] ? 1 : 0).flatten();
            while (offset < pass.shape[0] && pass[offset].item<float>() == 1f) offset++;
        }
        var mul = Next(after ?? sigmoid, "Mul");
        if (!mul.Input.Contains(x)) throw Refuse(file, mul.Name, "the SE gate does not multiply the value it pooled");
        long count = channels - offset;
        var w1 = Const(fc1, 1)[TensorIndex.Colon, TensorIndex.Slice(offset)];
        var w2 = Const(fc2, 1)[TensorIndex.Slice(offset)];
        var b2 = Const(fc2, 2)[TensorIndex.Slice(offset)];
        // Clones, not views: a view keeps its whole storage, which a .pth would then hold too (and PyBridge writes wrongly).
        return (new SeLayer(offset, count, w1.clone(), Const(fc1, 2), w2.clone(), b2.clone()), mul.Output[0]);
    }

    static ModelInputException Refuse(string file, string where, string why) =>
        new(file, $"the converted graph is not a plain chain at '{where}': {why}; write it as .onnx");
}
