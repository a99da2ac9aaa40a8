using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>Weight math of removing channels: tensors in, tensors out.</summary>
public static class ChannelRemoval
{
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
