using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>Weight math of removing channels: tensors in, tensors out.</summary>
public static class ChannelRemoval
{
    /// <summary>The indices of the channels <paramref name="keep"/> marks, as an int64 tensor.</summary>
    public static Tensor Indices(bool[] keep) =>
        tensor(Enumerable.Range(0, keep.Length).Where(i => keep[i]).Select(i => (long)i).ToArray());

    /// <summary>
    /// The kernel [out, in, kh, kw] restricted to output channels <paramref name="rows"/> and, where given, input
    /// channels <paramref name="columns"/> (the channels the previous layer kept).
    /// </summary>
    public static Tensor Select(Tensor kernel, Tensor rows, Tensor? columns)
    {
        var w = kernel.index_select(0, rows);
        return columns is null ? w : w.index_select(1, columns);
    }
}
