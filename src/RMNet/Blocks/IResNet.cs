using RMNet.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RMNet.Blocks;

/// <summary>InsightFace's IBasicBlock: bn3(conv2(prelu(bn2(conv1(bn1(x)))))) + (downsample(x) or x).</summary>
internal sealed class IBasicBlock : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror arcface_torch's state-dict keys
    private readonly BatchNorm2d bn1, bn2, bn3;
    private readonly Conv2d conv1, conv2;
    private readonly PReLU prelu;
    private readonly Sequential? downsample;
#pragma warning restore IDE1006

    /// <summary>A block as described by <paramref name="b"/>.</summary>
    public IBasicBlock(IBasicBlockSpec b) : base(nameof(IBasicBlock))
    {
        bn1 = BatchNorm2d(b.InChannels);
        conv1 = Conv2d(b.InChannels, b.Planes, 3, padding: 1, bias: false);
        bn2 = BatchNorm2d(b.Planes);
        prelu = PReLU(b.Planes);
        conv2 = Conv2d(b.Planes, b.Planes, 3, stride: b.Stride, padding: 1, bias: false);
        bn3 = BatchNorm2d(b.Planes);
        if (b.HasProjection)
            downsample = Sequential(("0", Conv2d(b.InChannels, b.Planes, 1, stride: b.Stride, bias: false)), ("1", BatchNorm2d(b.Planes)));
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = bn3.forward(conv2.forward(prelu.forward(bn2.forward(conv1.forward(bn1.forward(x))))));
        return (y + (downsample is null ? x : downsample.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>InsightFace's IResNet (conv1, bn1, prelu, layer1..4, bn2, fc, features), the original for verification.</summary>
internal sealed class IResNet : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror arcface_torch's state-dict keys
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1, bn2;
    private readonly PReLU prelu;
    private readonly Sequential layer1, layer2, layer3, layer4;
    private readonly Linear fc;
    private readonly BatchNorm1d features;
#pragma warning restore IDE1006

    /// <summary>Builds the layout (fresh weights, eval mode).</summary>
    public IResNet(IResNetSpec spec) : base(spec.DisplayName)
    {
        conv1 = Conv2d(3, spec.StemWidth, 3, padding: 1, bias: false);
        bn1 = BatchNorm2d(spec.StemWidth);
        prelu = PReLU(spec.StemWidth);
        Sequential Stage(int s) => Sequential(spec.Blocks.Where(b => b.Stage == s).Select(b => (b.Prefix.Split('.')[1], (Module<Tensor, Tensor>)new IBasicBlock(b))));
        (layer1, layer2, layer3, layer4) = (Stage(0), Stage(1), Stage(2), Stage(3));
        long last = spec.Blocks[^1].Planes;
        bn2 = BatchNorm2d(last);
        fc = Linear(last * spec.Spatial * spec.Spatial, spec.NumFeatures);
        features = BatchNorm1d(spec.NumFeatures);
        RegisterComponents();
        eval();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var y = prelu.forward(bn1.forward(conv1.forward(x)));
        y = bn2.forward(layer4.forward(layer3.forward(layer2.forward(layer1.forward(y))))).flatten(1);
        return features.forward(fc.forward(y)).MoveToOuterDisposeScope();
    }
}
