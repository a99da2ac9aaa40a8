using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RMNet.Blocks;

/// <summary>
/// torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)). Field names match
/// torchvision's state-dict keys (conv1, bn1, conv2, bn2, downsample.0, downsample.1).
/// </summary>
internal sealed class BasicBlock : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror torchvision's state-dict keys
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Sequential? downsample;
    private readonly SqueezeExcite? se;
    private ChannelGates? gates;
#pragma warning restore IDE1006

    /// <summary>
    /// A block from <paramref name="inChannels"/> to <paramref name="planes"/> channels; <paramref name="seChannels"/>
    /// adds SE; <paramref name="width"/> is the inner width where pruning made it differ from <paramref name="planes"/>.
    /// </summary>
    public BasicBlock(long inChannels, long planes, long stride = 1, long? seChannels = null, long? width = null) : base(nameof(BasicBlock))
    {
        long inner = width ?? planes;
        if (seChannels is long rd) se = new SqueezeExcite(planes, rd);
        conv1 = Conv2d(inChannels, inner, 3, stride: stride, padding: 1, bias: false);
        bn1 = BatchNorm2d(inner);
        conv2 = Conv2d(inner, planes, 3, padding: 1, bias: false);
        bn2 = BatchNorm2d(planes);
        downsample = Shortcut.Projection(inChannels, planes, stride);
        RegisterComponents();
    }

    /// <summary>The gates added by <see cref="AddGates"/>, or null.</summary>
    public ChannelGates? Gates => gates;

    /// <summary>
    /// Adds a gate for every channel of the block's plain form (docs/design.md section 8), all at 1 so the block
    /// computes what it did: <c>inner</c> on conv1's channels, <c>reserve</c> on the input carried to the shortcut
    /// (followed by a ReLU, as the reserved channel is in the plain network), <c>output</c> on the sum before the
    /// final ReLU. The block still trains as a residual block; the gates fold into its plain form.
    /// </summary>
    public void AddGates()
    {
        if (se is not null) throw new RmException("channel gates are not implemented for squeeze-and-excitation blocks");
        if (gates is not null) return;
        gates = new ChannelGates(("inner", bn1.weight!.shape[0]), ("reserve", conv1.weight!.shape[1]), ("output", bn2.weight!.shape[0]));
        register_module("gates", gates);
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = bn1.forward(conv1.forward(x));
        if (gates is not null) y = gates.Apply("inner", y);
        y = bn2.forward(conv2.forward(functional.relu(y)));
        if (se is not null) y = se.forward(y);
        var carried = gates is null ? x : functional.relu(gates.Apply("reserve", x));
        var sum = y + (downsample is null ? carried : downsample.forward(carried));
        if (gates is not null) sum = gates.Apply("output", sum);
        return functional.relu(sum).MoveToOuterDisposeScope();
    }
}

/// <summary>torchvision's projection shortcut: a strided 1x1 conv and a BN, named downsample.0 / downsample.1.</summary>
internal static class Shortcut
{
    /// <summary>The projection, or null where the identity fits (same channels, stride 1).</summary>
    public static Sequential? Projection(long inChannels, long outChannels, long stride) =>
        stride == 1 && inChannels == outChannels ? null
            : Sequential(("0", Conv2d(inChannels, outChannels, 1, stride: stride, bias: false)), ("1", BatchNorm2d(outChannels)));
}
