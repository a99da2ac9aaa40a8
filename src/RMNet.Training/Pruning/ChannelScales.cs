using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>
/// One contiguous run of a layer's channel scales: a parameter vector whose magnitudes rank the channels, and
/// the shift that must be zeroed with it where the scale alone does not silence a channel (a BatchNorm's bias).
/// </summary>
/// <param name="Scale">The scale vector (a BN weight or a gate).</param>
/// <param name="Shift">The BN bias that goes with it, or null for a pure multiplier.</param>
internal sealed record ScaleSegment(Tensor Scale, Tensor? Shift = null);

/// <summary>
/// The scales of one prunable layer's output channels, in channel order, possibly from several parameters (a
/// block's first plain conv carries the reserved input and the inner channels, each gated by its own vector).
/// The L1 penalty or the Taylor saliency acts on them, selection ranks them, and the pruning mask zeroes them.
/// </summary>
internal sealed class ChannelScales
{
    readonly ScaleSegment[] _segments;

    /// <summary>Scales made of <paramref name="segments"/>, concatenated in order.</summary>
    public ChannelScales(params ScaleSegment[] segments) => _segments = segments;

    /// <summary>A BatchNorm's weight as the scales (network slimming's gamma); masking zeroes its bias too.</summary>
    public static ChannelScales Of(BatchNorm2d bn) => new(new ScaleSegment(bn.weight!, bn.bias!));

    /// <summary>Channels of the layer.</summary>
    public int Count => _segments.Sum(s => (int)s.Scale.shape[0]);

    /// <summary>Sum of |scale|: this layer's part of the L1 sparsity penalty (differentiable).</summary>
    public Tensor L1() => _segments.Select(s => s.Scale.abs().sum()).Aggregate((a, b) => a + b);

    /// <summary>
    /// (scale x its gradient)^2 per channel, in channel order, from the gradients the last backward pass left:
    /// one step's first-order Taylor estimate of the loss change if the channel were removed (0 where there is no gradient).
    /// </summary>
    public double[] Saliency()
    {
        using var noGrad = no_grad();
        return _segments.SelectMany(s => s.Scale.grad is { } g
            ? (s.Scale.detach() * g).square().to_type(ScalarType.Float64).data<double>().ToArray()
            : new double[s.Scale.shape[0]]).ToArray();
    }

    /// <summary>|scale| per channel, in channel order: the importance selection ranks.</summary>
    public float[] Importance()
    {
        using var noGrad = no_grad();
        return _segments.SelectMany(s => s.Scale.detach().abs().to_type(ScalarType.Float32).data<float>().ToArray()).ToArray();
    }

    /// <summary>Applies <see cref="Mask(bool[])"/> to every layer: <paramref name="keep"/>[i] to <paramref name="layers"/>[i].</summary>
    public static void Mask(IReadOnlyList<ChannelScales> layers, IReadOnlyList<bool[]> keep)
    {
        for (int i = 0; i < layers.Count; i++) layers[i].Mask(keep[i]);
    }

    /// <summary>
    /// Zeroes the scales (and shifts) of the channels <paramref name="keep"/> leaves out, so those channels output
    /// exactly 0 in train and eval mode alike. Re-applied after every optimiser step while fine-tuning.
    /// </summary>
    public void Mask(bool[] keep)
    {
        if (keep.Length != Count) throw new ArgumentException($"mask of {keep.Length} channels for a layer of {Count}", nameof(keep));
        using var noGrad = no_grad();
        int offset = 0;
        foreach (var segment in _segments)
        {
            int n = (int)segment.Scale.shape[0];
            using var mask = tensor(keep.Skip(offset).Take(n).Select(k => k ? 1f : 0f).ToArray()).to_type(segment.Scale.dtype);
            segment.Scale.mul_(mask);
            segment.Shift?.mul_(mask);
            offset += n;
        }
    }
}
