using RMNet.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RMNet.Blocks;

/// <summary>torchvision's InvertedResidual, its parts under <c>conv</c> with torchvision's indices.</summary>
internal sealed class InvertedResidual : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror torchvision's state-dict keys
    private readonly Sequential conv;
#pragma warning restore IDE1006
    readonly bool _residual;

    /// <summary>A block as described by <paramref name="b"/>.</summary>
    public InvertedResidual(InvertedResidualSpec b) : base(nameof(InvertedResidual))
    {
        _residual = b.Residual;
        var parts = new List<(string, Module<Tensor, Tensor>)>();
        if (b.Expand) parts.Add((parts.Count.ToString(), MobileNetV2.ConvBnRelu6(b.InChannels, b.Hidden, 1, 1, 1)));
        parts.Add((parts.Count.ToString(), MobileNetV2.ConvBnRelu6(b.Hidden, b.Hidden, 3, b.Stride, b.Hidden)));
        parts.Add((parts.Count.ToString(), Conv2d(b.Hidden, b.OutChannels, 1, bias: false)));
        parts.Add((parts.Count.ToString(), BatchNorm2d(b.OutChannels)));
        conv = Sequential(parts);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x) => _residual ? x + conv.forward(x) : conv.forward(x);
}

/// <summary>torchvision's MobileNetV2 (features, classifier), the original for verification.</summary>
internal sealed class MobileNetV2 : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror torchvision's state-dict keys
    private readonly Sequential features;
    private readonly Sequential classifier;
#pragma warning restore IDE1006

    /// <summary>Builds the layout (fresh weights, eval mode).</summary>
    public MobileNetV2(MobileNetV2Spec spec) : base("MobileNetV2")
    {
        var parts = new List<(string, Module<Tensor, Tensor>)> { ("0", ConvBnRelu6(3, spec.StemWidth, 3, 2, 1)) };
        parts.AddRange(spec.Blocks.Select(b => (b.Index.ToString(), (Module<Tensor, Tensor>)new InvertedResidual(b))));
        parts.Add((spec.LastIndex.ToString(), ConvBnRelu6(spec.Blocks[^1].OutChannels, spec.LastWidth, 1, 1, 1)));
        features = Sequential(parts);
        classifier = Sequential(("0", Dropout(0.2)), ("1", Linear(spec.LastWidth, spec.NumClasses)));
        RegisterComponents();
        eval();
    }

    /// <summary>Conv (no bias), BN, ReLU6 as torchvision's Conv2dNormActivation, children "0", "1", "2".</summary>
    internal static Sequential ConvBnRelu6(long inC, long outC, long k, long stride, long groups) =>
        Sequential(("0", Conv2d(inC, outC, k, stride: stride, padding: (k - 1) / 2, groups: groups, bias: false)), ("1", BatchNorm2d(outC)), ("2", ReLU6()));

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        return classifier.forward(features.forward(x).mean(new long[] { 2, 3 })).MoveToOuterDisposeScope();
    }
}
