using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RMNet.Blocks;

/// <summary>Squeeze-and-excitation with timm's names: x * sigmoid(fc2(relu(fc1(mean(x))))), fc1/fc2 1x1 convs with bias.</summary>
internal sealed class SqueezeExcite : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror timm's state-dict keys
    private readonly Conv2d fc1, fc2;
#pragma warning restore IDE1006

    /// <summary>SE over <paramref name="channels"/> with <paramref name="reduced"/> hidden channels.</summary>
    public SqueezeExcite(long channels, long reduced) : base(nameof(SqueezeExcite))
    {
        fc1 = Conv2d(channels, reduced, 1);
        fc2 = Conv2d(reduced, channels, 1);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var gate = functional.sigmoid(fc2.forward(functional.relu(fc1.forward(x.mean(new long[] { 2, 3 }, keepdim: true)))));
        return (x * gate).MoveToOuterDisposeScope();
    }
}
