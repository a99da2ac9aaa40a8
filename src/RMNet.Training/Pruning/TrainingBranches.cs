using RMNet.Plain;
using RMNet.Weights;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>
/// RepVGG's training-time branches beside one kxk conv of a plain network: a 1x1 conv with its BatchNorm and, where
/// the conv keeps its width and resolution, an identity BatchNorm. They add capacity and short gradient paths while
/// training and cost nothing once trained: <see cref="Fuse"/> folds them into the conv (<see cref="BranchFusion"/>).
/// They start silent (every BatchNorm weight and shift zero), so the network starts computing what it computed
/// without them. Names: <c>conv</c>, <c>bn</c>, <c>id</c>.
/// </summary>
internal sealed class TrainingBranches : nn.Module
{
    const double Eps = 1e-5;
    readonly Conv2d _oneByOne;
    readonly BatchNorm2d _oneByOneNorm;
    readonly BatchNorm2d? _identity;
    readonly ConvLayer _layer;

    TrainingBranches(ConvLayer layer) : base(nameof(TrainingBranches))
    {
        _layer = layer;
        _oneByOne = nn.Conv2d(layer.InChannels, layer.OutChannels, 1, stride: layer.StrideH, bias: false);
        _oneByOneNorm = nn.BatchNorm2d(layer.OutChannels, eps: Eps);
        register_module("conv", _oneByOne);
        register_module("bn", _oneByOneNorm);
        if (layer.InChannels == layer.OutChannels && layer.StrideH == 1 && layer.StrideW == 1)
        {
            _identity = nn.BatchNorm2d(layer.OutChannels, eps: Eps);
            register_module("id", _identity);
        }
        Silence();
    }

    /// <summary>
    /// The branches for <paramref name="layer"/>, or null where RepVGG's fusion does not apply: 1x1 convs (a 1x1
    /// branch would add nothing) and convs whose padding does not keep a 1x1 conv's output grid ("same"-style
    /// padding, (k - 1) / 2 on every side, with equal strides).
    /// </summary>
    public static TrainingBranches? For(ConvLayer layer)
    {
        bool centred = layer.KernelH % 2 == 1 && layer.KernelW % 2 == 1 && layer.Padding.IsSymmetric
            && layer.Padding.Top == layer.KernelH / 2 && layer.Padding.Left == layer.KernelW / 2;
        return centred && layer.Groups == 1 && layer.KernelH * layer.KernelW > 1 && layer.StrideH == layer.StrideW ? new TrainingBranches(layer) : null;
    }

    /// <summary>Whether an identity branch is present (the conv keeps its width and resolution).</summary>
    public bool HasIdentity => _identity is not null;

    /// <summary>Zeroes every BatchNorm's weight and shift (statistics reset), so the branches add exactly nothing.</summary>
    public void Silence()
    {
        // nn.init zeroes in place and returns the same tensor; Tensor.zero_() would return a fresh wrapper per call,
        // left to the finaliser.
        using var noGrad = no_grad();
        foreach (var bn in Norms)
        {
            nn.init.zeros_(bn.weight!);
            nn.init.zeros_(bn.bias!);
            bn.reset_running_stats();
        }
    }

    /// <summary>The branches' sum for the conv's input <paramref name="input"/>, to add to the conv's own (BatchNormed) output.</summary>
    public Tensor Forward(Tensor input)
    {
        var y = _oneByOneNorm.forward(_oneByOne.forward(input));
        return _identity is null ? y : y + _identity.forward(input);
    }

    /// <summary>The one conv (with bias) equal in eval mode to <paramref name="conv"/> and <paramref name="norm"/> plus these branches; float64.</summary>
    public ConvWeights Fuse(Conv2d conv, BatchNorm2d norm) =>
        BranchFusion.Merge((new ConvWeights(conv.weight!.detach(), null), norm.InferenceWeights()),
            (new ConvWeights(_oneByOne.weight!.detach(), null), _oneByOneNorm.InferenceWeights()),
            _identity?.InferenceWeights(), _layer.StrideH, _layer.Padding, 1).Weights;

    IEnumerable<BatchNorm2d> Norms => _identity is null ? new[] { _oneByOneNorm } : new[] { _oneByOneNorm, _identity };
}
