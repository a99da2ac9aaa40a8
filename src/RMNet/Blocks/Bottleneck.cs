using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RMNet.Blocks;

/// <summary>
/// torchvision's Bottleneck (ResNet v1.5: the stride sits on the 3x3 conv): 1x1 -> 3x3 (groups) -> 1x1 with
/// expansion 4, plus the identity or projection shortcut. Field names match torchvision's state-dict keys.
/// </summary>
internal sealed class Bottleneck : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror torchvision's state-dict keys
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly Sequential? downsample;
    private readonly SqueezeExcite? se;
#pragma warning restore IDE1006

    /// <summary>A block with inner <paramref name="width"/> and <paramref name="outChannels"/> outputs; <paramref name="seChannels"/> adds SE.</summary>
    public Bottleneck(long inChannels, long width, long outChannels, long stride = 1, long groups = 1, long? seChannels = null) : base(nameof(Bottleneck))
    {
        if (seChannels is long rd) se = new SqueezeExcite(outChannels, rd);
        conv1 = Conv2d(inChannels, width, 1, bias: false);
        bn1 = BatchNorm2d(width);
        conv2 = Conv2d(width, width, 3, stride: stride, padding: 1, groups: groups, bias: false);
        bn2 = BatchNorm2d(width);
        conv3 = Conv2d(width, outChannels, 1, bias: false);
        bn3 = BatchNorm2d(outChannels);
        downsample = Shortcut.Projection(inChannels, outChannels, stride);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = functional.relu(bn1.forward(conv1.forward(x)));
        y = functional.relu(bn2.forward(conv2.forward(y)));
        y = bn3.forward(conv3.forward(y));
        if (se is not null) y = se.forward(y);
        var identity = downsample is null ? x : downsample.forward(x);
        return functional.relu(y + identity).MoveToOuterDisposeScope();
    }
}
