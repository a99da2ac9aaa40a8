using static TorchSharp.torch;

namespace RMNet.Plain;

/// <summary>
/// Rewrites every per-channel clamp of a plain network as ReLUs, for runtimes without per-channel Max/Min
/// (OpenCV 4.6, simple accelerators): the output then uses only Conv, Relu, pools, Reshape and Gemm.
/// <para>
/// Each channel's clamp is a signed sum of ReLUs of shifted copies of its input z (docs/design.md section 7):
/// [0, hi] = relu(z) - relu(z - hi); [0, inf) = relu(z); (-inf, inf) = relu(z) - relu(-z);
/// (-inf, hi] = relu(z) - relu(-z) - relu(z - hi). The conv before the clamp computes the copies (its rows
/// repeated with sign s and bias shift t), a ReLU follows, and the layer after it takes the signed sum in its own
/// weights: a conv or linear layer repeats its input columns with the signs, and a global average pool between
/// them commutes with the sum. Every channel gets the same number of copies R (unused copies are zero rows, whose
/// ReLU is 0), so groups keep their structure: a conv with g groups stays one with g groups.
/// </para>
/// Conditions: each clamp follows a conv and is followed by a conv, or by a global average pool, flatten and a
/// linear layer; lower bounds are 0 or -inf (a finite non-zero lower bound would put a constant into the next
/// layer's bias, which its zero padding does not see). Exact; it costs R times the channels at each clamp
/// (R = 2 for ReLU6 and for carried channels).
/// </summary>
internal static class ClampAsRelu
{
    /// <summary>One ReLU copy of a channel: relu(Sign * z + Shift), added to the channel with factor Weight.</summary>
    readonly record struct Copy(double Sign, double Shift, double Weight);

    /// <summary>The network with every clamp rewritten; throws <see cref="RmException"/> where a condition fails.</summary>
    public static PlainModel Rewrite(PlainModel model)
    {
        var layers = model.Layers.ToList();
        if (!layers.OfType<ClampLayer>().Any()) return model;
        for (int i = 0; i < layers.Count; i++)
        {
            if (layers[i] is not ClampLayer clamp) continue;
            if (i == 0 || layers[i - 1] is not ConvLayer before)
                throw new RmException($"layer {i}: a clamp written as ReLUs needs a conv before it (found {(i == 0 ? "nothing" : layers[i - 1].Kind)})");
            var copies = Copies(clamp, i);
            int r = copies.Max(c => c.Count);
            layers[i - 1] = Expand(before, copies, r);
            layers[i] = new ReluLayer();
            int next = i + 1;
            while (next < layers.Count && layers[next] is GlobalAvgPoolLayer or FlattenLayer) next++;
            layers[next] = next < layers.Count ? layers[next] switch
            {
                ConvLayer c => Collapse(c, copies, r),
                LinearLayer l when next > i + 1 => CollapseLinear(l, copies, r),
                var other => throw new RmException($"layer {next}: a clamp written as ReLUs needs a conv or a linear layer after it (found {other.Kind})"),
            } : throw new RmException($"layer {i}: a clamp written as ReLUs cannot end the network");
        }
        return model.WithLayers(layers);
    }

    static List<List<Copy>> Copies(ClampLayer clamp, int index)
    {
        var lower = clamp.Lower.to_type(ScalarType.Float64).data<double>().ToArray();
        var upper = clamp.Upper.to_type(ScalarType.Float64).data<double>().ToArray();
        var result = new List<List<Copy>>();
        for (int c = 0; c < lower.Length; c++)
        {
            var copies = new List<Copy> { new(1, 0, 1) };
            if (double.IsNegativeInfinity(lower[c])) copies.Add(new(-1, 0, -1));
            else if (lower[c] != 0)
                throw new RmException($"layer {index}: channel {c} is clamped below at {lower[c]}; only 0 or no lower bound can be written as ReLUs exactly");
            if (!double.IsPositiveInfinity(upper[c])) copies.Add(new(1, -upper[c], -1));
            result.Add(copies);
        }
        return result;
    }

    /// <summary>Sign, shift and weight of copy k of channel c at index c * R + k; unused copies are all zero.</summary>
    static (Tensor Sign, Tensor Shift, Tensor Weight) Table(List<List<Copy>> copies, int r)
    {
        var sign = new double[copies.Count * r];
        var shift = new double[sign.Length];
        var weight = new double[sign.Length];
        for (int c = 0; c < copies.Count; c++)
            for (int k = 0; k < copies[c].Count; k++)
                (sign[c * r + k], shift[c * r + k], weight[c * r + k]) = (copies[c][k].Sign, copies[c][k].Shift, copies[c][k].Weight);
        return (tensor(sign), tensor(shift), tensor(weight));
    }

    /// <summary>The conv before the clamp: output channel c becomes R rows, copy k being Sign * row + Shift.</summary>
    static ConvLayer Expand(ConvLayer conv, List<List<Copy>> copies, int r)
    {
        using var scope = NewDisposeScope();
        var (sign, shift, _) = Table(copies, r);
        var weight = conv.Weight.to_type(ScalarType.Float64).repeat_interleave(r, 0) * sign.reshape(-1, 1, 1, 1);
        var bias = conv.Bias.to_type(ScalarType.Float64).repeat_interleave(r, 0) * sign + shift;
        return conv with { Weight = weight.to_type(ScalarType.Float32).MoveToOuterDisposeScope(), Bias = bias.to_type(ScalarType.Float32).MoveToOuterDisposeScope() };
    }

    /// <summary>The conv after the clamp: input column c becomes R columns, copy k weighted by its Weight.</summary>
    static ConvLayer Collapse(ConvLayer conv, List<List<Copy>> copies, int r)
    {
        using var scope = NewDisposeScope();
        var (_, _, factor) = Table(copies, r);
        // Output o of group g reads the input channels of group g: their factors, one row per output.
        var perOutput = factor.reshape(conv.Groups, -1).repeat_interleave(conv.OutChannels / conv.Groups, 0);
        var weight = conv.Weight.to_type(ScalarType.Float64).repeat_interleave(r, 1) * perOutput.unsqueeze(-1).unsqueeze(-1);
        return conv with { Weight = weight.to_type(ScalarType.Float32).MoveToOuterDisposeScope() };
    }

    static LinearLayer CollapseLinear(LinearLayer linear, List<List<Copy>> copies, int r)
    {
        using var scope = NewDisposeScope();
        var (_, _, factor) = Table(copies, r);
        var weight = linear.Weight.to_type(ScalarType.Float64).repeat_interleave(r, 1) * factor.unsqueeze(0);
        return linear with { Weight = weight.to_type(ScalarType.Float32).MoveToOuterDisposeScope() };
    }
}
