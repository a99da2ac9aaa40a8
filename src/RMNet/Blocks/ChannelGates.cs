using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RMNet.Blocks;

/// <summary>
/// Learnable per-channel multipliers, all starting at 1, that RM pruning trains in place of a residual
/// network's plain channels: one vector per named place (stem, inner, reserve, output). Registered under
/// <c>gates</c>, so a gated network's state dict is torchvision's plus <c>gates.*</c> keys. A gate at 0 switches
/// its channel off exactly.
/// </summary>
internal sealed class ChannelGates : nn.Module
{
    readonly Dictionary<string, Parameter> _gates = new();

    /// <summary>One gate vector per (name, channels).</summary>
    public ChannelGates(params (string Name, long Channels)[] gates) : base(nameof(ChannelGates))
    {
        foreach (var (name, channels) in gates)
        {
            var gate = new Parameter(ones(channels));
            register_parameter(name, gate);
            _gates[name] = gate;
        }
    }

    /// <summary>The gate vector called <paramref name="name"/>.</summary>
    public Parameter this[string name] => _gates[name];

    /// <summary><paramref name="x"/> [N, C, H, W] with channel c multiplied by gate <paramref name="name"/>[c].</summary>
    public Tensor Apply(string name, Tensor x) => x * _gates[name].view(1, -1, 1, 1);
}
