using Onnx;
using RMNet.Onnx;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Lowering;

/// <summary>
/// Builds the ONNX graph of a network from its checkpoint's weights, in the form PyTorch's exporter gives it in eval mode
/// (each BatchNorm folded into the conv before it, in float64), so that the graph passes treat a lowered checkpoint
/// exactly as they treat the export of the same network. Values and nodes are named after the checkpoint's modules.
/// Every tensor read is recorded: <see cref="Build"/> refuses a checkpoint with weights the lowering did not use (an SE
/// module, an extra head), which would otherwise be verified against a graph that leaves them out.
/// </summary>
internal sealed class GraphBuilder(StateDict sd)
{
    readonly HashSet<string> _read = new(StringComparer.Ordinal);
    // Channels of each value, so that a tensor of the wrong shape is named here rather than failing in libtorch or ONNX Runtime.
    readonly Dictionary<string, long> _channels = new(StringComparer.Ordinal);
    readonly GraphProto _graph = new() { Name = "rmnet_lowered" };
    // Written as they come (float32, holding their own tensors): the float64 math of each conv then ends with its scope.
    readonly List<TensorProto> _initializers = new();

    /// <summary>The graph input [N, C, H, W].</summary>
    public string Input => OnnxExporter.InputName;

    /// <summary>conv then BN (<paramref name="bn"/> the BN module's prefix) as one Conv with bias; returns its output.</summary>
    /// <remarks><paramref name="kernel"/>: the square kernel the family's module has there (a 1x1 branch), where the lowering knows it.</remarks>
    public string ConvBn(string x, string conv, string bn, int stride, int groups = 1, double eps = 1e-5, long? kernel = null)
    {
        // The float64 fold is freed here, not by the finalizer: an IResNet-100's is half a gigabyte.
        using var scope = TorchSharp.torch.NewDisposeScope();
        return Conv(x, conv, WithBatchNorm(ReadConv(conv, kernel), bn, eps), stride, groups);
    }

    /// <summary>
    /// A ConvBN module <paramref name="p"/>: <c>.conv</c> + <c>.bn</c>, or as fused for deployment <c>.conv</c> with a bias.
    /// Told apart by the bias, which only the fused form has: a train-form one missing its BN is then refused naming it.
    /// </summary>
    public string ConvBnModule(string x, string p, int stride, double eps) =>
        sd.ContainsKey($"{p}.conv.bias") ? Conv(x, $"{p}.conv", ReadConv($"{p}.conv"), stride) : ConvBn(x, $"{p}.conv", $"{p}.bn", stride, eps: eps);

    /// <summary>The weight of the conv module <paramref name="conv"/>, and its bias where it has one; refused where its kernel is not <paramref name="kernel"/> x <paramref name="kernel"/> (where given).</summary>
    public ConvWeights ReadConv(string conv, long? kernel = null)
    {
        var weight = Read(conv + ".weight", 4);
        if (kernel is long k && (weight.shape[2] != k || weight.shape[3] != k)) throw Shape(conv + ".weight", weight, $"[out, in/groups, {k}, {k}]");
        return new ConvWeights(weight, sd.ContainsKey(conv + ".bias") ? Read(conv + ".bias", weight.shape[0]) : null);
    }

    /// <summary><paramref name="conv"/> with the BN module <paramref name="bn"/> after it folded in (float64).</summary>
    public ConvWeights WithBatchNorm(ConvWeights conv, string bn, double eps = 1e-5)
    {
        long c = conv.OutChannels;
        return BatchNormFusion.Fuse(conv, new BatchNormWeights(Read(bn + ".weight", c), Read(bn + ".bias", c), Read(bn + ".running_mean", c),
            Read(bn + ".running_var", c), Eps(bn, eps)));
    }

    /// <summary>
    /// The sum of <paramref name="terms"/> (parallel branches of one block, in order) as a chain of Adds named
    /// <paramref name="name"/>, <paramref name="name"/>_1, ...; the branch-merge pass reads the chain as one sum.
    /// </summary>
    public string SumAll(IReadOnlyList<string> terms, string name)
    {
        string y = terms[0];
        for (int i = 1; i < terms.Count; i++) y = Sum(y, terms[i], i == 1 ? name : $"{name}_{i - 1}");
        return y;
    }

    /// <summary>A Conv with bias (float64 <paramref name="weights"/>, written as float32), padded to keep the size at stride 1.</summary>
    public string Conv(string x, string name, ConvWeights weights, int stride, int groups = 1)
    {
        var w = weights.Weight;
        if (w.dim() != 4) throw Shape($"{name}.weight", w, "[out, in/groups, kh, kw]");
        // Every conv a lowering writes pads by k/2 to keep the size: an even kernel would change it and break the sum after it.
        if (w.shape[2] % 2 == 0 || w.shape[3] % 2 == 0) throw Shape($"{name}.weight", w, "[out, in/groups, kh, kw] with kh and kw odd");
        long inChannels = w.shape[1] * groups;
        if (_channels.TryGetValue(x, out long c) ? c != inChannels : x != Input)
            throw Shape($"{name}.weight", w, $"[out, {c / Math.Max(groups, 1)}, kh, kw] for its {c}-channel input{(groups > 1 ? $" in {groups} groups" : "")}");
        if (weights.Bias is { } bias && bias.numel() != w.shape[0]) throw Shape($"{name}.bias", bias, $"[{w.shape[0]}]");
        _channels[x] = inChannels;
        _channels[name] = w.shape[0];
        int ph = (int)w.shape[2] / 2, pw = (int)w.shape[3] / 2;
        var geometry = new Plain.ConvLayer(w, weights.BiasOrZeros(), stride, stride, new Plain.Padding2d(ph, pw, ph, pw), groups);
        return Add(OnnxNodes.Conv(name, x, Initializer(name + ".weight", geometry.Weight), Initializer(name + ".bias", geometry.Bias), name, geometry));
    }

    /// <summary>ReLU6 as PyTorch exports it from opset 11: a Clip with constant bounds 0 and 6.</summary>
    public string Relu6(string x, string name) =>
        Same(x, Add(new NodeProto { Name = name, OpType = "Clip", Input = { x, Initializer(name + ".min", TorchSharp.torch.tensor(0f)), Initializer(name + ".max", TorchSharp.torch.tensor(6f)) }, Output = { name } }));

    /// <summary>A Relu named <paramref name="name"/>.</summary>
    public string Relu(string x, string name) => Same(x, Add(OnnxNodes.Unary("Relu", name, x, name)));

    /// <summary>A square MaxPool.</summary>
    public string MaxPool(string x, string name, int kernel, int stride, int pad) => Same(x, Add(OnnxNodes.Unary("MaxPool", name, x, name,
        OnnxNodes.Ints("kernel_shape", kernel, kernel), OnnxNodes.Ints("strides", stride, stride), OnnxNodes.Ints("pads", pad, pad, pad, pad))));

    /// <summary>A square AveragePool without padding, as PyTorch's <c>AvgPool2d(k, s, ceil_mode, count_include_pad)</c>.</summary>
    public string AveragePool(string x, string name, int kernel, int stride, bool ceilMode, bool countIncludePad) => Same(x, Add(OnnxNodes.Unary("AveragePool", name, x, name,
        OnnxNodes.Ints("kernel_shape", kernel, kernel), OnnxNodes.Ints("strides", stride, stride), OnnxNodes.Ints("pads", 0, 0, 0, 0),
        OnnxNodes.Int("ceil_mode", ceilMode ? 1 : 0), OnnxNodes.Int("count_include_pad", countIncludePad ? 1 : 0))));

    /// <summary>
    /// Squeeze-and-excitation as timm's SEModule and PyTorch's export of it: mean over H and W (ReduceMean), 1x1 conv
    /// <c>fc1</c> with bias, ReLU, 1x1 conv <c>fc2</c>, Sigmoid, and the input multiplied by that gate.
    /// </summary>
    public string SqueezeExcite(string x, string se)
    {
        string mean = Same(x, Add(OnnxNodes.Unary("ReduceMean", $"{se}.mean", x, $"{se}.mean", OnnxNodes.Ints("axes", 2, 3), OnnxNodes.Int("keepdims", 1))));
        string fc1 = Relu(Conv(mean, $"{se}.fc1", new ConvWeights(Read($"{se}.fc1.weight"), Read($"{se}.fc1.bias")), 1), $"{se}.act");
        string fc2 = Conv(fc1, $"{se}.fc2", new ConvWeights(Read($"{se}.fc2.weight"), Read($"{se}.fc2.bias")), 1);
        if (_channels[fc2] != _channels[x]) throw Shape($"{se}.fc2.weight", sd[$"{se}.fc2.weight"], $"[{_channels[x]}, hidden, 1, 1] to gate {_channels[x]} channels");
        string gate = Add(OnnxNodes.Unary("Sigmoid", $"{se}.gate", fc2, $"{se}.gate"));
        return Same(x, Add(new NodeProto { Name = $"{se}.excite", OpType = "Mul", Input = { x, gate }, Output = { $"{se}.excite" } }));
    }

    /// <summary>
    /// timm's ECA gate (<c>conv</c>: a 1-d conv of odd kernel k across the channels of the mean, zero-padded by k/2, no
    /// bias; then a sigmoid) as PyTorch exports it: ReduceMean over H and W, Reshape to [N, 1, C], the 1-d Conv,
    /// Sigmoid, Reshape to [N, C, 1, 1], Mul. The ECA pass (<see cref="Onnx.EcaGates"/>) rewrites it into an SE gate for
    /// the carry pass, as it does the export's; the original keeps the family's own k weights.
    /// </summary>
    public string EfficientChannelAttention(string x, string eca)
    {
        long channels = _channels[x];   // the conv's whose output it gates
        var w = Read($"{eca}.conv.weight");
        if (w.dim() != 3 || w.shape[0] != 1 || w.shape[1] != 1) throw Shape($"{eca}.conv.weight", w, "[1, 1, k] (a 1-d conv across the channels)");
        long k = w.shape[2];
        if (k % 2 == 0) throw new ModelInputException(sd.Source, $"'{eca}.conv.weight' has an even kernel ({k}); ECA's is odd");
        string mean = Add(OnnxNodes.Unary("ReduceMean", $"{eca}.mean", x, $"{eca}.mean", OnnxNodes.Ints("axes", 2, 3), OnnxNodes.Int("keepdims", 0)));
        string row = Add(new NodeProto { Name = $"{eca}.row", OpType = "Reshape", Input = { mean, ShapeConstant($"{eca}.row_shape", -1, 1, channels) }, Output = { $"{eca}.row" } });
        var conv = new NodeProto { Name = $"{eca}.conv", OpType = "Conv", Input = { row, Initializer($"{eca}.conv.weight", w) }, Output = { $"{eca}.conv" } };
        conv.Attribute.Add(OnnxNodes.Ints("kernel_shape", k));
        conv.Attribute.Add(OnnxNodes.Ints("pads", k / 2, k / 2));
        conv.Attribute.Add(OnnxNodes.Ints("strides", 1));
        conv.Attribute.Add(OnnxNodes.Ints("dilations", 1));
        conv.Attribute.Add(OnnxNodes.Int("group", 1));
        string sigmoid = Add(OnnxNodes.Unary("Sigmoid", $"{eca}.gate", Add(conv), $"{eca}.gate"));
        string gate = Add(new NodeProto { Name = $"{eca}.column", OpType = "Reshape", Input = { sigmoid, ShapeConstant($"{eca}.column_shape", -1, channels, 1, 1) }, Output = { $"{eca}.column" } });
        return Same(x, Add(new NodeProto { Name = $"{eca}.excite", OpType = "Mul", Input = { x, gate }, Output = { $"{eca}.excite" } }));
    }

    /// <summary>
    /// An inference-time BatchNormalization node on <paramref name="x"/> (the BN module <paramref name="bn"/>), as PyTorch exports
    /// a BN that follows no conv; its output is named <paramref name="output"/> where given (the graph's output).
    /// </summary>
    public string BatchNorm(string x, string bn, double eps = 1e-5, string? output = null)
    {
        long c = _channels[x];
        var node = new NodeProto
        {
            Name = bn, OpType = "BatchNormalization", Output = { output ?? bn },
            Input = { x, Initializer(bn + ".weight", Read(bn + ".weight", c)), Initializer(bn + ".bias", Read(bn + ".bias", c)),
                Initializer(bn + ".running_mean", Read(bn + ".running_mean", c)), Initializer(bn + ".running_var", Read(bn + ".running_var", c)) },
        };
        node.Attribute.Add(OnnxNodes.Float("epsilon", (float)Eps(bn, eps)));
        return Same(x, Add(node));
    }

    /// <summary>The residual join a + b.</summary>
    public string Sum(string a, string b, string name)
    {
        if (_channels[a] != _channels[b])
            throw new ModelInputException(sd.Source, $"the sum '{name}' would add {_channels[a]} channels ('{a}') to {_channels[b]} ('{b}'): the checkpoint's shapes do not fit its layout");
        return Same(a, Add(new NodeProto { Name = name, OpType = "Add", Input = { a, b }, Output = { name } }));
    }

    /// <summary>Global average pool, flatten and the linear classifier <paramref name="fc"/>: the graph's output.</summary>
    public void Classifier(string x, string fc) =>
        Linear(Flatten(Same(x, Add(OnnxNodes.Unary("GlobalAveragePool", "global_pool", x, "global_pool"))), "flatten", pooled: true), fc, OnnxExporter.OutputName);

    /// <summary>A per-channel PReLU whose slopes are the module <paramref name="prelu"/>'s weight (one per channel, or one for all).</summary>
    public string PRelu(string x, string prelu)
    {
        long c = _channels[x];
        var slope = Read(prelu + ".weight");
        if (slope.dim() != 1 || (slope.shape[0] != c && slope.shape[0] != 1)) throw Shape(prelu + ".weight", slope, $"[{c}] or [1]");
        return Same(x, Add(new NodeProto { Name = prelu, OpType = "PRelu", Input = { x, Initializer(prelu + ".weight", slope.reshape(-1, 1, 1)) }, Output = { prelu } }));
    }

    /// <summary>[N, C, H, W] flattened to [N, C*H*W]; C wide where <paramref name="pooled"/> (H = W = 1), else known only with the input size.</summary>
    public string Flatten(string x, string name, bool pooled = false)
    {
        if (pooled) Same(x, name);
        return Add(OnnxNodes.Unary("Flatten", name, x, name, OnnxNodes.Int("axis", 1)));
    }

    /// <summary>The linear layer <paramref name="fc"/> on flattened <paramref name="x"/>; its output is named <paramref name="output"/> where given.</summary>
    public string Linear(string x, string fc, string? output = null)
    {
        var w = Read(fc + ".weight", 2);
        if (_channels.TryGetValue(x, out long c) && w.shape[1] != c) throw Shape(fc + ".weight", w, $"[outputs, {c}]");
        string name = output ?? fc;
        _channels[name] = w.shape[0];
        return Add(OnnxNodes.Gemm(fc, x, Initializer(fc + ".weight", w), Initializer(fc + ".bias", Read(fc + ".bias", w.shape[0])), name));
    }

    /// <summary>
    /// The model: input [N, <paramref name="inputChannels"/>, H, W] (H = W = <paramref name="fixedSize"/> where the network
    /// takes one size only), output [N, <paramref name="classes"/>], float32 weights.
    /// </summary>
    public ModelProto Build(long inputChannels, long classes, string docString, int? fixedSize = null)
    {
        // BatchNorm's step counter is bookkeeping, not a weight.
        var unused = sd.Keys.Where(k => !_read.Contains(k) && !k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)).ToList();
        if (unused.Count > 0)
            throw new ModelInputException(sd.Source, $"{unused.Count} tensor(s) the layout does not use ({string.Join(", ", unused.Take(3).Select(k => $"'{k}'"))}" +
                $"{(unused.Count > 3 ? ", ..." : "")}): a module rmnet does not know (an attention block, an anti-aliasing filter, another head?) would be left out, so the checkpoint is refused");
        var model = OnnxExporter.Model(_graph, inputChannels, classes, docString, fixedSize);
        model.Graph.Initializer.AddRange(_initializers);
        return model;
    }

    /// <summary>The tensor under <paramref name="key"/> (a <see cref="ModelInputException"/> naming it where missing), recorded as used.</summary>
    public TorchSharp.torch.Tensor Read(string key)
    {
        var t = sd.Require(key);
        _read.Add(key);
        return t;
    }

    /// <summary><see cref="Read(string)"/> of a vector of <paramref name="length"/> values, refused (naming key and shapes) otherwise.</summary>
    TorchSharp.torch.Tensor Read(string key, long length)
    {
        var t = Read(key);
        return t.dim() == 1 && t.shape[0] == length ? t : throw Shape(key, t, $"[{length}]");
    }

    /// <summary><see cref="Read(string)"/> of a tensor of <paramref name="dims"/> dimensions.</summary>
    TorchSharp.torch.Tensor Read(string key, int dims)
    {
        var t = Read(key);
        return t.dim() == dims ? t : throw Shape(key, t, $"{dims} dimensions");
    }

    ModelInputException Shape(string key, TorchSharp.torch.Tensor t, string expected) =>
        new(sd.Source, $"key '{key}' has shape [{string.Join(", ", t.shape)}], expected {expected}");

    /// <summary>The epsilon of BatchNorm <paramref name="bn"/>: as a whole module saved it, else <paramref name="eps"/> (the family's, or --bn-eps).</summary>
    double Eps(string bn, double eps) => sd.SavedBatchNormEps.TryGetValue(bn, out double saved) ? saved : eps;

    /// <summary><paramref name="y"/> has the channels of <paramref name="x"/>.</summary>
    string Same(string x, string y)
    {
        if (_channels.TryGetValue(x, out long c)) _channels[y] = c;
        return y;
    }

    string Add(NodeProto node)
    {
        _graph.Node.Add(node);
        return node.Output[0];
    }

    /// <summary>An int64 initializer holding <paramref name="dims"/>: a Reshape's target shape.</summary>
    string ShapeConstant(string name, params long[] dims)
    {
        _initializers.Add(OnnxTensors.FromTensor(name, TorchSharp.torch.tensor(dims)));
        return name;
    }

    string Initializer(string name, Tensor value)
    {
        _initializers.Add(OnnxTensors.FromTensor(name, value.dtype == ScalarType.Float32 ? value : value.to_type(ScalarType.Float32)));
        return name;
    }
}
