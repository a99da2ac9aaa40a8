using RMNet.Plain;
using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>Weight math of removing channels: tensors in, tensors out.</summary>
internal static class ChannelRemoval
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

    /// <summary>
    /// <paramref name="model"/> with the output channels of conv i that <paramref name="keep"/>[i] leaves out removed,
    /// together with the next conv's (or the classifier's) inputs they fed. Exact where every removed channel
    /// outputs 0 (ReLU(0) = 0 feeds nothing on) or feeds only zero weights. Ungrouped convs only.
    /// </summary>
    public static PlainModel Remove(PlainModel model, IReadOnlyList<bool[]> keep)
    {
        var layers = new List<PlainLayer>();
        int convIndex = 0;
        Tensor? previous = null;
        foreach (var layer in model.Layers)
        {
            switch (layer)
            {
                case ConvLayer c when c.Groups == 1:
                {
                    if (keep[convIndex].Length != c.OutChannels)
                        throw new RmException($"mask of {keep[convIndex].Length} channels for conv {convIndex} with {c.OutChannels}");
                    var rows = Indices(keep[convIndex]);
                    layers.Add(c with { Weight = Select(c.Weight, rows, previous).contiguous(), Bias = c.Bias.index_select(0, rows) });
                    previous?.Dispose();
                    previous = rows;
                    convIndex++;
                    break;
                }
                case ConvLayer:
                    throw new RmException("channel removal needs ungrouped convs");
                case LinearLayer l when previous is not null:
                    layers.Add(new LinearLayer(l.Weight.index_select(1, previous), l.Bias.clone()));
                    break;
                default:
                    layers.Add(layer);
                    break;
            }
        }
        previous?.Dispose();
        if (convIndex != keep.Count) throw new RmException($"{keep.Count} masks for {convIndex} convs");
        return new PlainModel(layers, model.InputChannels) { LayerStages = model.LayerStages };
    }
}
