using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Weights;

/// <summary>Kernel building blocks of the RM transform (float64, no modules).</summary>
internal static class Kernels
{
    /// <summary>
    /// The identity as a kxk conv with <paramref name="groups"/> groups: W[o, o mod (C/groups), tapH, tapW] = 1
    /// (docs/design.md section 2), float64.
    /// </summary>
    public static Tensor GroupedDirac(long channels, long groups, long kernelH, long kernelW, long tapH, long tapW)
    {
        CheckTap(kernelH, kernelW, tapH, tapW);
        long perGroup = channels / groups;
        var w = zeros(new[] { channels, perGroup, kernelH, kernelW }, dtype: ScalarType.Float64);
        var rows = arange(channels, dtype: ScalarType.Int64);
        w.index_put_(ones(channels, dtype: ScalarType.Float64), rows, rows.remainder(perGroup), tensor(tapH), tensor(tapW));
        return w;
    }

    /// <summary>
    /// A kxk average over each channel of the conv's own input (an average pool that counts its zero padding), as a
    /// kernel in <paramref name="groups"/> groups, float64.
    /// </summary>
    public static Tensor Average(long channels, long groups, long k) => GroupedDirac(channels, groups, 1, 1, 0, 0).repeat(1, 1, k, k) / (k * k);

    /// <summary>
    /// Dirac entries in a dense kernel: W[firstRow + r, firstCol + r, tapH, tapW] = <paramref name="value"/> for r in
    /// [0, <paramref name="count"/>): channels passed (or, with -1, negated) from input to output.
    /// </summary>
    public static void PutDirac(Tensor weight, long firstRow, long firstCol, long count, long tapH, long tapW, double value = 1.0)
    {
        if (count == 0) return;
        var r = arange(count, dtype: ScalarType.Int64);
        weight.index_put_(full(count, value, dtype: ScalarType.Float64), r + firstRow, r + firstCol, tensor(tapH), tensor(tapW));
    }

    /// <summary>Places a 1x1 kernel [out, in, 1, 1] at tap (tapH, tapW) of a zero kh x kw kernel.</summary>
    public static Tensor PadOneByOne(Tensor kernel1x1, long kernelH, long kernelW, long tapH, long tapW)
    {
        CheckTap(kernelH, kernelW, tapH, tapW);
        if (kernel1x1.shape[2] != 1 || kernel1x1.shape[3] != 1)
            throw new ArgumentException($"expected a 1x1 kernel, got {kernel1x1.shape[2]}x{kernel1x1.shape[3]}");
        return nn.functional.pad(kernel1x1, new[] { tapW, kernelW - 1 - tapW, tapH, kernelH - 1 - tapH });
    }

    /// <summary>An odd kernel [out, in, h, w] at the centre of a zero kh x kw one (kh - h and kw - w even).</summary>
    public static Tensor PadToCentre(Tensor kernel, long kernelH, long kernelW)
    {
        long h = kernel.shape[2], w = kernel.shape[3], top = (kernelH - h) / 2, left = (kernelW - w) / 2;
        if (top < 0 || left < 0 || (kernelH - h) % 2 != 0 || (kernelW - w) % 2 != 0)
            throw new ArgumentException($"a {h}x{w} kernel has no centred place in a {kernelH}x{kernelW} one");
        return nn.functional.pad(kernel, new[] { left, kernelW - w - left, top, kernelH - h - top });
    }

    /// <summary>Expands a grouped kernel [out, in/groups, kh, kw] into the equivalent dense one [out, in, kh, kw].</summary>
    public static Tensor Ungroup(Tensor kernel, long groups)
    {
        if (groups == 1) return kernel;
        long outC = kernel.shape[0], inPerGroup = kernel.shape[1], outPerGroup = outC / groups;
        var dense = zeros(new[] { outC, inPerGroup * groups, kernel.shape[2], kernel.shape[3] }, dtype: kernel.dtype);
        for (long g = 0; g < groups; g++)
        {
            var rows = TensorIndex.Slice(g * outPerGroup, (g + 1) * outPerGroup);
            var cols = TensorIndex.Slice(g * inPerGroup, (g + 1) * inPerGroup);
            dense[rows, cols] = kernel[rows];
        }
        return dense;
    }

    /// <summary>
    /// A kernel of <paramref name="fromGroups"/> groups [out, in/fromGroups, kh, kw] as the same conv in
    /// <paramref name="toGroups"/> coarser groups [out, in/toGroups, kh, kw] (<paramref name="toGroups"/> dividing
    /// <paramref name="fromGroups"/>): each output still reads only its own fine group's inputs, zeros elsewhere.
    /// </summary>
    public static Tensor Regroup(Tensor kernel, long fromGroups, long toGroups)
    {
        if (fromGroups == toGroups) return kernel;
        if (toGroups < 1 || fromGroups % toGroups != 0)
            throw new ArgumentException($"{fromGroups} groups cannot be written as {toGroups}: it does not divide them");
        long outC = kernel.shape[0], outPer = outC / toGroups, ratio = fromGroups / toGroups;
        // Each coarse group holds `ratio` fine groups: ungroup the coarse group's rows among themselves.
        return cat(Enumerable.Range(0, (int)toGroups).Select(q => Ungroup(kernel[TensorIndex.Slice(q * outPer, (q + 1) * outPer)], ratio)).ToArray(), 0);
    }

    static void CheckTap(long kernelH, long kernelW, long tapH, long tapW)
    {
        if (tapH < 0 || tapW < 0 || tapH >= kernelH || tapW >= kernelW)
            throw new RmException($"a {kernelH}x{kernelW} kernel has no tap ({tapH},{tapW}): its begin padding is too large to carry the input through");
    }
}
