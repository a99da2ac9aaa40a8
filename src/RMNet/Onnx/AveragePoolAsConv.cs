using Onnx;
using RMNet.Plain;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// An AveragePool in a branch of a sum written as the depthwise conv it is, so that the branch merge can add it into
/// the block's conv: each output is (1 / kh kw) times the sum of a kh x kw window of its own channel. DBB's average
/// branch (<c>AvgPool2d(k, s, p)</c> then a BN, summed with the block's convs) is so; PyTorch exports its padding as a
/// zero Pad before an unpadded AveragePool, which <see cref="ConvNodes"/> then reads as the conv's padding.
/// Conditions: 2-D kernel, no dilation, no auto_pad, ceil_mode 0, and padding (if any) counted in the average
/// (count_include_pad 1): otherwise the divisor differs at the borders or windows are partial; the channel count is
/// known (a conv, BN or graph input upstream through channel-wise ops); the pool's output, directly or through a BN,
/// is read only by an Add or Sum. A pool anywhere else stays a pool (cheaper; ResNet-D's shortcut pass reads it as one).
/// <code>
///   x --AveragePool(k, s, p)--BN--Add      becomes   x --Conv(k, s, p, group C, W = 1/k^2, b = 0)--BN--Add
/// </code>
/// </summary>
internal static class AveragePoolAsConv
{
    /// <summary>Rewrites <paramref name="model"/> in place; returns how many pools became convs.</summary>
    public static int Run(ModelProto model, string file) => GraphRewrite.Round(model, file, (g, e) =>
    {
        var fresh = g.FreshNames();
        foreach (var pool in g.Order.Where(n => n.OpType == "AveragePool" && n.Input.Count == 1 && n.Output.Count == 1))
        {
            var kernel = pool.Ints("kernel_shape");
            var strides = pool.Ints("strides") is { Length: 2 } s ? s : new long[] { 1, 1 };
            var pads = pool.Ints("pads") is { Length: 4 } p ? p : new long[4];
            if (kernel.Length != 2 || strides[0] != strides[1] || pool.Int("ceil_mode", 0) != 0 || pool.AutoPad() is not ("NOTSET" or "")) continue;
            if (pool.Ints("dilations").Any(d => d != 1) || pads.Any(v => v != 0) && pool.Int("count_include_pad", 0) != 1) continue;
            if (!InSumBranch(g, pool.Output[0]) || Channels(g, pool.Input[0]) is not long channels) continue;

            var weight = full(new[] { channels, 1, kernel[0], kernel[1] }, 1.0 / (kernel[0] * kernel[1]), dtype: ScalarType.Float32);
            var layer = new ConvLayer(weight, zeros(channels), (int)strides[0], (int)strides[1],
                new Padding2d((int)pads[0], (int)pads[1], (int)pads[2], (int)pads[3]), (int)channels);
            string name = OnnxGraph.NodeName(pool);
            var w = OnnxTensors.FromTensor(fresh($"{name}_weight"), layer.Weight);
            var b = OnnxTensors.FromTensor(fresh($"{name}_bias"), layer.Bias);
            e.Initializers.Add(w);
            e.Initializers.Add(b);
            e.Replacements[pool] = new List<NodeProto> { OnnxNodes.Conv(name, pool.Input[0], w.Name, b.Name, pool.Output[0], layer) };
        }
        return e.Replacements.Count;
    });

    /// <summary>True where <paramref name="value"/>, directly or through one BatchNormalization, is read only by an Add or Sum.</summary>
    static bool InSumBranch(OnnxGraph g, string value)
    {
        if (!g.HasSingleUse(value)) return false;
        var reader = g.ConsumersOf(value)[0];
        if (reader.OpType == "BatchNormalization" && reader.Input[0] == value)
        {
            if (!g.HasSingleUse(reader.Output[0])) return false;
            reader = g.ConsumersOf(reader.Output[0])[0];
        }
        return reader.OpType is "Add" or "Sum";
    }

    /// <summary>The channel count of a 4-D value, from the conv, BN or graph input it comes from through channel-wise ops; null where unknown.</summary>
    static long? Channels(OnnxGraph g, string value)
    {
        for (int steps = 0; steps < 64; steps++)
        {
            if (g.Graph.Input.FirstOrDefault(i => i.Name == value) is { } input)
                return input.Type?.TensorType?.Shape?.Dim is { Count: 4 } dims && dims[1].DimValue > 0 ? dims[1].DimValue : null;
            var p = g.ProducerOf(value);
            switch (p?.OpType)
            {
                case "Conv" when p.Input.Count > 1 && g.Initializers.TryGetValue(p.Input[1], out var w) && w.Dims.Count == 4:
                    return w.Dims[0];
                case "BatchNormalization" when p.Input.Count > 1 && g.Initializers.TryGetValue(p.Input[1], out var scale) && scale.Dims.Count == 1:
                    return scale.Dims[0];
                case "Relu" or "Clip" or "LeakyRelu" or "Sigmoid" or "Identity" or "AveragePool" or "MaxPool" or "Add" or "Sum" or "BatchNormalization":
                    value = p.Input[0];
                    break;
                case "Pad" when ConvNodes.ZeroPad(g, p.Output[0]) is not null:
                    // Padding of H and W only (what ZeroPad accepts) keeps the channels.
                    value = p.Input[0];
                    break;
                default:
                    return null;
            }
        }
        return null;
    }
}
