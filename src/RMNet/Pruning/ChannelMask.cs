using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>The pruning mask on a module: which output channels of one BatchNorm stay.</summary>
public static class ChannelMask
{
    /// <summary>
    /// Zeroes the scale and shift of the channels <paramref name="keep"/> leaves out, so their BatchNorm outputs
    /// are exactly 0 in train and eval mode alike. Re-applied after every optimiser step while fine-tuning.
    /// </summary>
    public static void Apply(BatchNorm2d bn, bool[] keep)
    {
        using var noGrad = no_grad();
        using var mask = tensor(keep.Select(k => k ? 1f : 0f).ToArray());
        bn.weight!.mul_(mask);
        bn.bias!.mul_(mask);
    }
}
