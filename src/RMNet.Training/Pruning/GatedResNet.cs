using RMNet.Blocks;
using RMNet.Models;
using RMNet.Plain;
using RMNet.Rm;
using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>
/// RM pruning's default form for Basic-block ResNets: the ResNet itself, still residual, with a gate on every channel
/// of its plain form (<see cref="ResNet.AddGates"/>). Trained as a ResNet (the shortcut keeps gradients flowing, as
/// in the paper's pruning code), cut as a plain network: the gates fold into the dense RM form, and a channel whose
/// gate is 0 is removed, reserved channels included.
/// </summary>
internal sealed class GatedResNet : IChannelPrunable, IDisposable
{
    readonly ResNet _model;
    readonly ChannelScales[] _scales;

    /// <summary>The network of <paramref name="source"/> with every gate at 1 (so it computes what the source does).</summary>
    public GatedResNet(ResNetCheckpoint source)
    {
        if (!Supports(source.Spec))
            throw new RmException($"{source.DisplayName}: gated (residual-form) pruning is implemented for Basic-block ResNets without SE; use --train-form plain");
        _model = source.CreateResNet();
        _model.AddGates();
        // Plain conv order: the stem, then per block its first conv ([reserved ; inner], reserved first as the RM
        // transform lays them out) and its second (the block output).
        var scales = new List<ChannelScales> { new(new ScaleSegment(_model.Gates!["stem"])) };
        foreach (var gates in Gates)
        {
            scales.Add(new ChannelScales(new ScaleSegment(gates["reserve"]), new ScaleSegment(gates["inner"])));
            scales.Add(new ChannelScales(new ScaleSegment(gates["output"])));
        }
        _scales = scales.ToArray();
    }

    /// <summary>Whether the layout can be gated: Basic blocks without squeeze-and-excitation.</summary>
    public static bool Supports(ResNetSpec spec) => spec.Block == BlockKind.Basic && spec.SeChannels is null;

    /// <summary>The gated ResNet (torchvision names plus <c>gates.*</c>).</summary>
    public ResNet Model => _model;

    /// <inheritdoc />
    public nn.Module<Tensor, Tensor> Network => _model;

    /// <inheritdoc />
    public IReadOnlyList<ChannelScales> Scales => _scales;

    IEnumerable<ChannelGates> Gates => _model.Blocks.Select(b => ((BasicBlock)b).Gates!);

    /// <inheritdoc />
    public PlainModel ToPlain(IReadOnlyList<bool[]>? keep = null)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var spec = _model.Spec;
        var sd = new StateDict("gated network");
        foreach (var (key, t) in _model.state_dict()) sd.Add(key, t.detach());
        var gates = spec.Blocks().Zip(Gates).ToDictionary(p => p.First.Prefix, p => p.Second);
        var weights = new FusedResNetWeights(
            () => GateFolding.ScaleOutputs(TorchvisionWeights.Stem(sd, spec), _model.Gates!["stem"]),
            b =>
            {
                var branch = TorchvisionWeights.Branch(sd, spec, b);
                return new[] { GateFolding.ScaleOutputs(branch[0], gates[b.Prefix]["inner"]), GateFolding.ScaleOutputs(branch[1], gates[b.Prefix]["output"]) };
            },
            b => GateFolding.Shortcut(TorchvisionWeights.Projection(sd, b), gates[b.Prefix]["reserve"], gates[b.Prefix]["output"], b.Stride));
        var plain = Lowering.LoweredConversion.ToPlain(Lowering.TorchvisionResNet.Lower(sd, spec, weights), sd.Source, RmMode.Dense, NegativeInputMode.PRelu,
            null, default, Lowering.TorchvisionResNet.Layout(spec));
        var result = keep is null ? plain : ChannelRemoval.Remove(plain, keep);
        PlainLayer.MoveToOuterDisposeScope(result.Layers);
        return result;
    }

    /// <inheritdoc />
    public void Dispose() => _model.Dispose();
}
