using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>Weight math of folding channel gates into BN-folded convs (float64): tensors in, tensors out.</summary>
internal static class GateFolding
{
    /// <summary>A conv whose output channel c is then multiplied by <paramref name="gate"/>[c]: g * (W x + b) = (g W) x + g b.</summary>
    public static FusedConv ScaleOutputs(FusedConv conv, Tensor gate)
    {
        var g = gate.detach().to_type(ScalarType.Float64);
        var weights = new ConvWeights(conv.Weights.Weight * g.view(-1, 1, 1, 1), conv.Weights.BiasOrZeros() * g);
        return conv with { Weights = weights };
    }

    /// <summary>
    /// A gated block's shortcut as one 1x1 conv: output gate o (after the sum) times the projection P (identity when
    /// null) applied to relu(r x), where r is the reserve gate. The block input x is non-negative, so
    /// relu(r x) = max(r, 0) x, and the shortcut is o * P(max(r, 0) x): P's rows scaled by o, its columns by max(r, 0).
    /// </summary>
    /// <param name="projection">The BN-folded projection, or null for the identity.</param>
    /// <param name="reserve">Gate on the carried input, [in].</param>
    /// <param name="output">Gate on the block output, [out].</param>
    /// <param name="stride">The block's stride (the identity's is 1).</param>
    public static FusedConv Shortcut(FusedConv? projection, Tensor reserve, Tensor output, int stride)
    {
        var r = reserve.detach().to_type(ScalarType.Float64).clamp_min(0);
        var o = output.detach().to_type(ScalarType.Float64);
        if (projection is null)
        {
            var diagonal = diag(r * o).view(r.shape[0], r.shape[0], 1, 1);
            return new FusedConv(new ConvWeights(diagonal, zeros(r.shape[0], dtype: ScalarType.Float64)), stride, Padding2d.All(0));
        }
        var weight = projection.Weights.Weight * o.view(-1, 1, 1, 1) * r.view(1, -1, 1, 1);
        return projection with { Weights = new ConvWeights(weight, projection.Weights.BiasOrZeros() * o) };
    }
}
