using RMNet.Blocks;
using RMNet.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>
/// Pruning a ResNet as it is, for comparison with RM pruning: only the inner channels of each Basic block (the
/// output of conv1/bn1) can go, because a block's input and output channels are tied to its shortcut's addition.
/// </summary>
internal static class ResidualPruning
{
    /// <summary>The BatchNorm after each block's first conv (bn1), in block order: the prunable scales.</summary>
    public static IReadOnlyList<BatchNorm2d> InnerScales(ResNet model)
    {
        var byName = model.named_modules().ToDictionary(m => m.name, m => m.module);
        return model.Spec.Blocks().Select(b => byName.TryGetValue($"{b.Prefix}.bn1", out var m) && m is BatchNorm2d bn ? bn
            : throw new RmException($"no BatchNorm '{b.Prefix}.bn1' in the model")).ToList();
    }

    /// <summary>
    /// The state dict with the removed inner channels gone: rows of conv1 and bn1, columns of conv2. Loads as a
    /// ResNet with per-block widths (<see cref="ResNetSpec.BlockWidths"/>), torchvision names unchanged.
    /// </summary>
    public static StateDict RemoveChannels(StateDict sd, ResNetSpec spec, IReadOnlyList<bool[]> keep, string source)
    {
        var blocks = spec.Blocks().ToList();
        var rows = new Dictionary<string, Tensor>();
        var columns = new Dictionary<string, Tensor>();
        for (int i = 0; i < blocks.Count; i++)
        {
            var index = ChannelRemoval.Indices(keep[i]);
            string p = blocks[i].Prefix;
            foreach (var key in new[] { "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var" })
                rows[$"{p}.{key}"] = index;
            columns[$"{p}.conv2.weight"] = index;
        }
        var result = new StateDict(source);
        foreach (var key in sd.Keys)
        {
            var t = sd[key];
            if (rows.TryGetValue(key, out var r)) t = t.index_select(0, r);
            else if (columns.TryGetValue(key, out var c)) t = t.index_select(1, c);
            else t = t.clone();
            result.Add(key, t);
        }
        return result;
    }
}
