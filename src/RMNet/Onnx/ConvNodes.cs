using Onnx;
using RMNet.Plain;
using RMNet.Weights;

namespace RMNet.Onnx;

/// <summary>
/// A Conv node of an ONNX graph, optionally followed by a BatchNormalization folded into it, read as a
/// <see cref="FusedConv"/>. The padding is null where it cannot be made explicit without knowing the
/// input size (auto_pad SAME_* with stride above 1).
/// </summary>
/// <param name="Conv">The Conv node.</param>
/// <param name="BatchNorm">The folded BatchNormalization node, or null.</param>
/// <param name="Pad">A zero Pad node before the conv whose padding was merged into it, or null.</param>
/// <param name="Input">The value the conv reads.</param>
/// <param name="Output">The value the unit produces (the BN's output where there is one).</param>
/// <param name="Fuse">Makes the weights with the BN folded in (float64) and the conv's geometry; see <see cref="Fused"/>.</param>
/// <param name="Problem">Why the unit cannot take part in RM (dilation, auto_pad, non-square stride), or null.</param>
internal sealed record ConvUnit(NodeProto Conv, NodeProto? BatchNorm, string Input, string Output, Func<FusedConv> Fuse, string? Problem, NodeProto? Pad = null)
{
    /// <summary>The weight's dimensions [out, in / groups, kh, kw], known without reading the weights.</summary>
    public required long[] WeightDims { get; init; }

    /// <summary>Stride, padding (all zeros where it is not known) and groups, known without reading the weights.</summary>
    public required (int Stride, Padding2d Padding, int Groups) Geometry { get; init; }

    // Read on first use: a pass reads the weights of the units it rewrites only, not of every conv of a graph that
    // may hold gigabytes of them (a dense plain network written by an earlier pass).
    readonly Lazy<FusedConv> fused = new(Fuse);

    /// <summary>Weights with the BN folded in (float64) and the conv's geometry, read from the graph on first use.</summary>
    public FusedConv Fused => fused.Value;

    /// <summary>The nodes the unit replaces.</summary>
    public IEnumerable<NodeProto> Nodes => new[] { Pad, Conv, BatchNorm }.OfType<NodeProto>();
}

/// <summary>Reads Conv (+ BatchNormalization) units out of an <see cref="OnnxGraph"/>.</summary>
internal static class ConvNodes
{
    /// <summary>Every Conv with initializer weights, keyed by the value the unit outputs (after a foldable BN).</summary>
    public static Dictionary<string, ConvUnit> Read(OnnxGraph g)
    {
        var units = new Dictionary<string, ConvUnit>();
        var sizes = StaticShapes.Spatial(g);
        foreach (var conv in g.Order.Where(n => n.OpType == "Conv"))
        {
            if (conv.Input.Count < 2 || !g.Initializers.TryGetValue(conv.Input[1], out var w)) continue;
            if (w.Dims.Count != 4) continue; // only 2-D convs take part
            bool hasBias = conv.Input.Count > 2 && conv.Input[2].Length > 0;
            if (hasBias && !g.Initializers.ContainsKey(conv.Input[2])) continue; // computed bias: leave alone
            var (stride, padding, groups, problem) = Geometry(conv, w, sizes.TryGetValue(conv.Input[0], out var size) ? size : null);
            NodeProto? bn = FoldableBatchNorm(g, conv);
            // A zero Pad node in front (TensorFlow exporters write explicit padding) adds to the conv's own padding.
            var pad = ZeroPad(g, conv.Input[0]);
            string input = conv.Input[0];
            if (pad is { } zp && padding is { } own)
            {
                padding = new Padding2d(own.Top + zp.Pads.Top, own.Left + zp.Pads.Left, own.Bottom + zp.Pads.Bottom, own.Right + zp.Pads.Right);
                input = zp.Node.Input[0];
            }
            var geometry = (stride, padding: padding ?? Padding2d.All(0), groups);
            FusedConv Fuse()
            {
                var weights = new ConvWeights(OnnxTensors.ToTensor(w, g.File), hasBias ? OnnxTensors.ToTensor(g.Initializers[conv.Input[2]], g.File) : null);
                if (bn is not null)
                {
                    var p = bn.Input.Skip(1).Take(4).Select(i => OnnxTensors.ToTensor(g.Initializers[i], g.File).flatten()).ToArray();
                    double eps = bn.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
                    weights = BatchNormFusion.Fuse(weights, new BatchNormWeights(p[0], p[1], p[2], p[3], eps));
                }
                return new FusedConv(weights.ToFloat64(), geometry.stride, geometry.padding, geometry.groups);
            }
            var unit = new ConvUnit(conv, bn, input, bn?.Output[0] ?? conv.Output[0], Fuse, problem, padding is null ? null : pad?.Node)
            {
                WeightDims = w.Dims.ToArray(), Geometry = geometry,
            };
            units[unit.Output] = unit;
        }
        return units;
    }

    /// <summary>
    /// The Pad node producing <paramref name="value"/> where it pads only H and W, with zeros, in constant mode, and
    /// feeds nothing else; its pads as [top, left, bottom, right].
    /// </summary>
    internal static (NodeProto Node, Padding2d Pads)? ZeroPad(OnnxGraph g, string value)
    {
        if (g.ProducerOf(value) is not { OpType: "Pad" } pad || !g.HasSingleUse(value)) return null;
        string mode = pad.Attribute.FirstOrDefault(a => a.Name == "mode")?.S.ToStringUtf8() ?? "constant";
        if (mode != "constant") return null;
        long[]? pads = pad.Attribute.FirstOrDefault(a => a.Name == "pads")?.Ints.ToArray();
        if (pads is null && pad.Input.Count > 1 && g.Initializers.TryGetValue(pad.Input[1], out var p))
            pads = OnnxTensors.ToTensor(p, g.File).to_type(TorchSharp.torch.ScalarType.Int64).data<long>().ToArray();
        if (pads is null || pads.Length != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0 || pads.Any(v => v < 0)) return null;
        // A constant value, where given, must be zero (attribute `value` before opset 11, input 2 after).
        if (pad.Attribute.FirstOrDefault(a => a.Name == "value") is { } v && v.F != 0) return null;
        if (pad.Input.Count > 2 && pad.Input[2].Length > 0)
        {
            if (!g.Initializers.TryGetValue(pad.Input[2], out var cv) || OnnxTensors.ToTensor(cv, g.File).abs().max().item<double>() != 0) return null;
        }
        return (pad, new Padding2d((int)pads[2], (int)pads[3], (int)pads[6], (int)pads[7]));
    }

    internal static NodeProto? FoldableBatchNorm(OnnxGraph g, NodeProto conv)
    {
        if (!g.HasSingleUse(conv.Output[0])) return null;
        var bn = g.ConsumersOf(conv.Output[0])[0];
        if (bn.OpType != "BatchNormalization" || bn.Input.Count < 5) return null;
        if (bn.Output.Skip(1).Any(o => o.Length > 0 && g.ConsumersOf(o).Count > 0)) return null; // training outputs in use
        if (bn.Attribute.FirstOrDefault(a => a.Name == "spatial") is { I: 0 }) return null;       // per-element BN (opset < 9)
        if (bn.Attribute.FirstOrDefault(a => a.Name == "training_mode") is { I: 1 }) return null;
        return bn.Input.Skip(1).Take(4).All(g.Initializers.ContainsKey) ? bn : null;
    }

    static (int Stride, Padding2d? Padding, int Groups, string? Problem) Geometry(NodeProto conv, TensorProto weight, (long H, long W)? inputSize)
    {
        int groups = (int)conv.Int("group", 1);
        var strides = conv.Ints("strides");
        var dilations = conv.Ints("dilations");
        var pads = conv.Ints("pads");
        string autoPad = conv.AutoPad();
        int sh = strides.Length > 0 ? (int)strides[0] : 1, sw = strides.Length > 1 ? (int)strides[1] : sh;
        int kh = (int)weight.Dims[2], kw = (int)weight.Dims[3];
        if (dilations.Any(d => d != 1)) return (sh, null, groups, "dilated conv");
        if (sh != sw) return (sh, null, groups, $"strides {sh}x{sw} differ per axis");
        Padding2d? padding = autoPad switch
        {
            "NOTSET" or "" => pads.Length == 4 ? new Padding2d((int)pads[0], (int)pads[1], (int)pads[2], (int)pads[3]) : Padding2d.All(0),
            "VALID" => Padding2d.All(0),
            // With stride 1 SAME pads k-1 in total whatever the input size; UPPER puts the odd one at the end.
            "SAME_UPPER" when sh == 1 => new Padding2d((kh - 1) / 2, (kw - 1) / 2, kh / 2, kw / 2),
            "SAME_LOWER" when sh == 1 => new Padding2d(kh / 2, kw / 2, (kh - 1) / 2, (kw - 1) / 2),
            // With a larger stride the split depends on the input size: known where the graph fixes it.
            "SAME_UPPER" or "SAME_LOWER" when inputSize is { } s => StaticShapes.SamePadding(autoPad == "SAME_UPPER", s.H, s.W, kh, kw, sh),
            _ => null,
        };
        return (sh, padding, groups, padding is null ? $"auto_pad {autoPad} with stride {sh} depends on the input size" : null);
    }
}
