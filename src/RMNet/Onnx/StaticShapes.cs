using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// Spatial sizes (H, W) of the image tensors of a graph whose input has a fixed size, propagated through the
/// ops residual networks use. Needed where padding depends on the input size (auto_pad SAME_* with stride above
/// 1, as TensorFlow exporters write it). Values whose size cannot be told are absent.
/// </summary>
internal static class StaticShapes
{
    static readonly HashSet<string> SizePreserving = new()
    {
        "Relu", "PRelu", "LeakyRelu", "Clip", "BatchNormalization", "Add", "Sum", "Mul", "Sigmoid", "Identity", "Max", "Min",
        "Sub", "Div", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus", "Mish", "Gelu", "Dropout", "Cast",
        "InstanceNormalization",
    };

    /// <summary>
    /// (H, W) per value name, for a graph whose image input has fixed H and W; where <paramref name="dynamicSize"/> is
    /// given, a dynamic H or W of a 4-d input is taken to be that size (for cost estimates, never for padding).
    /// </summary>
    public static Dictionary<string, (long H, long W)> Spatial(OnnxGraph g, long? dynamicSize = null)
    {
        var sizes = new Dictionary<string, (long, long)>();
        foreach (var input in g.Graph.Input.Where(i => !g.Initializers.ContainsKey(i.Name)))
        {
            var dims = input.Type?.TensorType?.Shape?.Dim;
            if (dims is not { Count: 4 }) continue;
            long h = dims[2].DimValue > 0 ? dims[2].DimValue : dynamicSize ?? 0, w = dims[3].DimValue > 0 ? dims[3].DimValue : dynamicSize ?? 0;
            if (h > 0 && w > 0) sizes[input.Name] = (h, w);
        }
        foreach (var node in g.Order)
        {
            if (node.Input.Count == 0 || node.Output.Count == 0) continue;
            var known = node.Input.Where(sizes.ContainsKey).Select(i => sizes[i]).ToList();
            if (known.Count == 0) continue;
            // Window ops read their first input; elementwise ops broadcast, so the largest operand gives the size
            // (an SE gate's [N, C, 1, 1] times the [N, C, H, W] it gates is H x W, whichever operand comes first).
            var (h, w) = sizes.TryGetValue(node.Input[0], out var first) && !SizePreserving.Contains(node.OpType) ? first : known.MaxBy(k => k.Item1 * k.Item2);
            (long, long)? output = node.OpType switch
            {
                _ when SizePreserving.Contains(node.OpType) => (h, w),
                "Concat" when node.Attribute.FirstOrDefault(a => a.Name == "axis")?.I == 1 => (h, w),
                "GlobalAveragePool" or "GlobalMaxPool" => (1, 1),
                // x.mean((2, 3), keepdim=True), as timm's SE modules are exported (axes an attribute up to opset 17).
                "ReduceMean" when node.Attribute.FirstOrDefault(a => a.Name == "axes")?.Ints.SequenceEqual(new long[] { 2, 3 }) == true
                    && node.Attribute.FirstOrDefault(a => a.Name == "keepdims")?.I != 0 => (1, 1),
                "Pad" => PadSize(g, node, h, w),
                "Conv" or "MaxPool" or "AveragePool" => WindowSize(g, node, h, w),
                _ => null,
            };
            if (output is { } o) sizes[node.Output[0]] = o;
        }
        return sizes;
    }

    /// <summary>auto_pad SAME_* padding [top, left, bottom, right] for an input of H x W.</summary>
    public static Plain.Padding2d SamePadding(bool upper, long h, long w, int kh, int kw, int stride)
    {
        (int Begin, int End) Axis(long size, int k)
        {
            long outSize = (size + stride - 1) / stride;
            int total = (int)Math.Max((outSize - 1) * stride + k - size, 0);
            return upper ? (total / 2, total - total / 2) : (total - total / 2, total / 2);
        }
        var (t, b) = Axis(h, kh);
        var (l, r) = Axis(w, kw);
        return new Plain.Padding2d(t, l, b, r);
    }

    static (long, long)? PadSize(OnnxGraph g, NodeProto pad, long h, long w)
    {
        long[]? pads = pad.Attribute.FirstOrDefault(a => a.Name == "pads")?.Ints.ToArray();
        if (pads is null && pad.Input.Count > 1 && g.Initializers.TryGetValue(pad.Input[1], out var p))
            pads = OnnxTensors.ToTensor(p, g.File).to_type(TorchSharp.torch.ScalarType.Int64).data<long>().ToArray();
        return pads is { Length: 8 } ? (h + pads[2] + pads[6], w + pads[3] + pads[7]) : null;
    }

    static (long, long)? WindowSize(OnnxGraph g, NodeProto node, long h, long w)
    {
        var kernel = node.Ints("kernel_shape");
        if (kernel.Length != 2 && node.OpType == "Conv" && node.Input.Count > 1 && g.Initializers.TryGetValue(node.Input[1], out var wt))
            kernel = wt.Dims.Skip(2).ToArray();
        if (kernel.Length != 2) return null;
        var strides = node.Ints("strides");
        long sh = strides.Length == 2 ? strides[0] : 1, sw = strides.Length == 2 ? strides[1] : 1;
        var dilations = node.Ints("dilations");
        long dh = dilations.Length == 2 ? dilations[0] : 1, dw = dilations.Length == 2 ? dilations[1] : 1;
        string autoPad = node.AutoPad();
        if (autoPad is "SAME_UPPER" or "SAME_LOWER") return ((h + sh - 1) / sh, (w + sw - 1) / sw);
        var pads = autoPad == "VALID" ? new long[4] : node.Ints("pads");
        if (pads.Length == 0) pads = new long[4];
        if (pads.Length != 4) return null;
        long ekh = (kernel[0] - 1) * dh + 1, ekw = (kernel[1] - 1) * dw + 1;
        bool ceil = node.Attribute.FirstOrDefault(a => a.Name == "ceil_mode") is { I: 1 };
        return (Output(h, pads[0], pads[2], ekh, sh, ceil), Output(w, pads[1], pads[3], ekw, sw, ceil));
    }

    /// <summary>Windows along one axis; with ceil_mode a last partial window counts if it starts inside the input or its begin padding.</summary>
    static long Output(long size, long begin, long end, long kernel, long stride, bool ceil)
    {
        long span = size + begin + end - kernel;
        if (!ceil) return span / stride + 1;
        long count = (span + stride - 1) / stride + 1;
        return (count - 1) * stride >= size + begin ? count - 1 : count;
    }
}
