using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RMNet.Plain;

/// <summary>
/// Runs a <see cref="PlainModel"/> layer by layer with TorchSharp's functional ops (eval mode, no autograd); made by
/// <see cref="PlainModel.ToModule"/>. Disposing the module frees its references to the weights.
/// </summary>
public sealed class PlainModule : nn.Module<Tensor, Tensor>
{
    readonly PlainModel _model;

    /// <summary>Wraps <paramref name="model"/>, which the module then owns (disposed with it); its tensors are used as they are, not copied.</summary>
    internal PlainModule(PlainModel model) : base("PlainModel")
    {
        _model = model;
        eval();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _model.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>The network's output for input [N, C, H, W].</summary>
    public override Tensor forward(Tensor input)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var x = input;
        foreach (var layer in _model.Layers)
            x = Apply(layer, x);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>One layer applied to <paramref name="x"/> (shared with the trainable <c>RMNet.Pruning.ScaledPlainNet</c> of the RMNet.Training package).</summary>
    internal static Tensor Apply(PlainLayer layer, Tensor x) => layer switch
    {
        ConvLayer c => Conv(c, x),
        ReluLayer => F.relu(x),
        PReluLayer p => F.prelu(x, p.Slope),
        SeLayer s => SqueezeExcite(s, x),
        ClampLayer c => minimum(maximum(x, c.Lower.reshape(-1, 1, 1)), c.Upper.reshape(-1, 1, 1)),
        MaxPoolLayer p => MaxPool(p, x),
        GlobalAvgPoolLayer => x.mean(new long[] { 2, 3 }, keepdim: true),
        FlattenLayer => x.flatten(1),
        LinearLayer l => F.linear(x, l.Weight, l.Bias),
        _ => throw new NotSupportedException($"layer kind {layer.Kind}"),
    };

    static Tensor Conv(ConvLayer c, Tensor x)
    {
        var pad = c.Padding;
        // torch's conv2d pads symmetrically only; asymmetric pads are applied explicitly first.
        if (!pad.IsSymmetric)
        {
            x = F.pad(x, pad.ToTorchPad());
            pad = Padding2d.All(0);
        }
        return F.conv2d(x, c.Weight, c.Bias, strides: new long[] { c.StrideH, c.StrideW },
            padding: new long[] { pad.Top, pad.Left }, groups: c.Groups);
    }

    static Tensor SqueezeExcite(SeLayer s, Tensor x)
    {
        var branch = x.narrow(1, s.Offset, s.Count);
        var gate = F.sigmoid(F.conv2d(F.relu(F.conv2d(branch.mean(new long[] { 2, 3 }, keepdim: true), s.Fc1Weight, s.Fc1Bias)), s.Fc2Weight, s.Fc2Bias));
        return s.Offset == 0 ? branch * gate : cat(new[] { x.narrow(1, 0, s.Offset), branch * gate }, 1);
    }

    static Tensor MaxPool(MaxPoolLayer p, Tensor x)
    {
        var pad = p.Padding;
        if (!pad.IsSymmetric)
        {
            x = F.pad(x, pad.ToTorchPad(), value: double.NegativeInfinity);
            pad = Padding2d.All(0);
        }
        return F.max_pool2d(x, new long[] { p.Kernel, p.Kernel }, new long[] { p.Stride, p.Stride },
            new long[] { pad.Top, pad.Left });
    }
}
