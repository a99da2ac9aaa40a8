using RMNet.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RMNet.Blocks;

/// <summary>A pre-activation block with the CIFAR-code names (bn1, conv1, bn2, conv2[, bn3, conv3], shortcut.0).</summary>
internal sealed class PreActBlock : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror the checkpoint keys
    private readonly BatchNorm2d bn1, bn2;
    private readonly BatchNorm2d? bn3;
    private readonly Conv2d conv1, conv2;
    private readonly Conv2d? conv3;
    private readonly Sequential? shortcut;
#pragma warning restore IDE1006

    /// <summary>A block as described by <paramref name="b"/>.</summary>
    public PreActBlock(PreActBlockSpec b, bool bottleneck, long k1, long k2) : base(nameof(PreActBlock))
    {
        bn1 = BatchNorm2d(b.InChannels);
        if (bottleneck)
        {
            conv1 = Conv2d(b.InChannels, b.Width, 1, bias: false);
            bn2 = BatchNorm2d(b.Width);
            conv2 = Conv2d(b.Width, b.Width, 3, stride: b.Stride, padding: 1, bias: false);
            bn3 = BatchNorm2d(b.Width);
            conv3 = Conv2d(b.Width, b.OutChannels, 1, bias: false);
        }
        else
        {
            conv1 = Conv2d(b.InChannels, b.Width, k1, stride: b.Stride, padding: k1 / 2, bias: false);
            bn2 = BatchNorm2d(b.Width);
            conv2 = Conv2d(b.Width, b.OutChannels, k2, padding: k2 / 2, bias: false);
        }
        if (b.HasProjection) shortcut = Sequential(("0", Conv2d(b.InChannels, b.OutChannels, 1, stride: b.Stride, bias: false)));
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var a = functional.relu(bn1.forward(x));
        var s = shortcut is null ? x : shortcut.forward(a);
        var y = conv2.forward(functional.relu(bn2.forward(conv1.forward(a))));
        if (conv3 is not null) y = conv3.forward(functional.relu(bn3!.forward(y)));
        return (y + s).MoveToOuterDisposeScope();
    }
}

/// <summary>A pre-activation ResNet (conv1, layer1..4, bn, linear), the original for verification.</summary>
internal sealed class PreActResNet : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror the checkpoint keys
    private readonly Conv2d conv1;
    private readonly Sequential layer1, layer2, layer3, layer4;
    private readonly BatchNorm2d bn;
    private readonly Linear linear;
#pragma warning restore IDE1006

    /// <summary>Builds the layout; kernel sizes come from the checkpoint through <paramref name="kernels"/>.</summary>
    public PreActResNet(PreActResNetSpec spec, Func<PreActBlockSpec, (long, long)> kernels) : base(spec.DisplayName)
    {
        conv1 = Conv2d(3, spec.StemWidth, spec.StemKernel, padding: spec.StemKernel / 2, bias: false);
        Sequential Stage(int s) => Sequential(spec.Blocks.Where(b => b.Stage == s).Select(b =>
        {
            var (k1, k2) = kernels(b);
            return (b.Prefix.Split('.')[1], (Module<Tensor, Tensor>)new PreActBlock(b, spec.Bottleneck, k1, k2));
        }));
        (layer1, layer2, layer3, layer4) = (Stage(0), Stage(1), Stage(2), Stage(3));
        bn = BatchNorm2d(spec.Blocks[^1].OutChannels);
        linear = Linear(spec.Blocks[^1].OutChannels, spec.NumClasses);
        RegisterComponents();
        eval();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var y = layer4.forward(layer3.forward(layer2.forward(layer1.forward(conv1.forward(x)))));
        y = functional.relu(bn.forward(y)).mean(new long[] { 2, 3 });
        return linear.forward(y).MoveToOuterDisposeScope();
    }
}
