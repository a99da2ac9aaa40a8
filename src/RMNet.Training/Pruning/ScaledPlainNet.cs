using RMNet.Plain;
using RMNet.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>
/// A plain network made trainable with a scale per channel: every conv is followed by a BatchNorm whose weight is
/// that channel's scale (network slimming's "gamma"), reserved channels included. Built from an RM-converted
/// <see cref="PlainModel"/> and calibrated so that in eval mode it computes exactly what the plain model does
/// (<see cref="Calibrate"/>). Names: <c>conv{i}</c>, <c>bn{i}</c>, <c>fc</c>, and <c>branch{i}</c> for the optional
/// training-time branches (<see cref="TrainingBranches"/>), which are for fine-tuning a network already pruned.
/// </summary>
internal sealed class ScaledPlainNet : nn.Module<Tensor, Tensor>, IChannelPrunable
{
    const double Eps = 1e-5;
    readonly PlainLayer[] _plan;
    readonly Conv2d[] _convs;
    readonly BatchNorm2d[] _scales;
    readonly ChannelScales[] _channelScales;
    readonly TrainingBranches?[] _branches;
    readonly Linear _fc;

    /// <summary>
    /// Copies <paramref name="plain"/>'s weights. Layers allowed: ungrouped conv, ReLU, max pool, global average
    /// pool, flatten and one final linear layer; anything else raises <see cref="RmException"/>.
    /// With <paramref name="trainingBranches"/>, every conv RepVGG's fusion applies to gets silent
    /// <see cref="TrainingBranches"/> beside it; <see cref="ToPlain"/> folds them in.
    /// </summary>
    public ScaledPlainNet(PlainModel plain, bool trainingBranches = false) : base(nameof(ScaledPlainNet))
    {
        InputChannels = plain.InputChannels;
        _plan = plain.Layers.ToArray();
        var convs = new List<Conv2d>();
        var scales = new List<BatchNorm2d>();
        var branches = new List<TrainingBranches?>();
        Linear? fc = null;
        using (no_grad())
        {
            foreach (var layer in _plan)
            {
                switch (layer)
                {
                    case ConvLayer c when c.Groups == 1 && c.Padding.IsSymmetric:
                        var conv = nn.Conv2d(c.InChannels, c.OutChannels, (c.KernelH, c.KernelW), stride: (c.StrideH, c.StrideW),
                            padding: (c.Padding.Top, c.Padding.Left), bias: false);
                        conv.weight!.copy_(c.Weight);
                        var bn = nn.BatchNorm2d(c.OutChannels, eps: Eps);
                        bn.bias!.copy_(c.Bias);   // close to the plain conv before Calibrate makes it exact
                        register_module($"conv{convs.Count}", conv);
                        register_module($"bn{convs.Count}", bn);
                        var branch = trainingBranches ? TrainingBranches.For(c) : null;
                        if (branch is not null) register_module($"branch{convs.Count}", branch);
                        branches.Add(branch);
                        convs.Add(conv);
                        scales.Add(bn);
                        break;
                    case ConvLayer c:
                        throw new RmException($"channel pruning needs ungrouped, symmetrically padded convs; conv {convs.Count} has groups {c.Groups}, padding {c.Padding} (convert with --rm-mode dense)");
                    case LinearLayer l when fc is null:
                        fc = nn.Linear(l.Weight.shape[1], l.Weight.shape[0]);
                        fc.weight!.copy_(l.Weight);
                        fc.bias!.copy_(l.Bias);
                        break;
                    case ReluLayer or MaxPoolLayer or GlobalAvgPoolLayer or FlattenLayer:
                        break;
                    default:
                        throw new RmException($"channel pruning supports conv/ReLU/pool/linear plain networks; found a '{layer.Kind}' layer");
                }
            }
        }
        _convs = convs.ToArray();
        _scales = scales.ToArray();
        _branches = branches.ToArray();
        _channelScales = _scales.Select(ChannelScales.Of).ToArray();
        _fc = fc ?? throw new RmException("the plain network has no linear classifier");
        register_module("fc", _fc);
        eval();
    }

    /// <summary>Channels of the input image.</summary>
    public int InputChannels { get; }

    /// <summary>The BatchNorm after each conv, in order; their weights are the channel scales.</summary>
    public IReadOnlyList<BatchNorm2d> Norms => _scales;

    /// <inheritdoc />
    public IReadOnlyList<ChannelScales> Scales => _channelScales;

    /// <inheritdoc />
    public nn.Module<Tensor, Tensor> Network => this;

    /// <summary>The convs, in order.</summary>
    public IReadOnlyList<Conv2d> Convs => _convs;

    /// <summary>The training-time branches beside each conv, in order (null where it has none).</summary>
    public IReadOnlyList<TrainingBranches?> Branches => _branches;

    /// <summary>
    /// Sets every BatchNorm so that in eval mode it adds the conv's bias and nothing else (running mean m and
    /// variance v measured on <paramref name="images"/>, scale sqrt(v + eps), shift m + bias: (y - m) / sqrt(v + eps)
    /// * sqrt(v + eps) + m + b = y + b), while the scale starts at the channel's own spread, as a trained BN's does.
    /// In train mode the batch statistics then reproduce nearly the same function, so training starts from it.
    /// Training-time branches are silenced, so they add nothing.
    /// </summary>
    public void Calibrate(Tensor images)
    {
        eval();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        foreach (var branch in _branches) branch?.Silence();
        var x = images;
        int convIndex = 0;
        foreach (var layer in _plan)
        {
            if (layer is ConvLayer conv)
            {
                var y = _convs[convIndex].forward(x);
                var dims = new long[] { 0, 2, 3 };
                var mean = y.mean(dims);
                var variance = y.var(dims, unbiased: false);
                var bn = _scales[convIndex];
                bn.running_mean!.copy_(mean);
                bn.running_var!.copy_(variance);
                bn.weight!.copy_((variance + Eps).sqrt());
                bn.bias!.copy_(mean + conv.Bias);
                x = bn.forward(y);
                convIndex++;
            }
            else x = Step(layer, x);
        }
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using IDisposable? noGrad = training ? null : no_grad();
        using var scope = NewDisposeScope();
        var x = input;
        int convIndex = 0;
        foreach (var layer in _plan)
        {
            if (layer is ConvLayer)
            {
                var y = _scales[convIndex].forward(_convs[convIndex].forward(x));
                x = _branches[convIndex] is { } branch ? y + branch.Forward(x) : y;
                convIndex++;
            }
            else x = Step(layer, x);
        }
        return x.MoveToOuterDisposeScope();
    }

    Tensor Step(PlainLayer layer, Tensor x) => layer is LinearLayer ? _fc.forward(x) : PlainModule.Apply(layer, x);

    /// <summary>
    /// The plain network this one computes in eval mode, BatchNorms folded into the convs, keeping only the
    /// channels <paramref name="keep"/> marks (per conv; null keeps all). Exact where every dropped channel's
    /// scale and shift are zero (its output is then 0, and ReLU(0) = 0 feeds nothing to the next layer).
    /// Training-time branches are folded into their convs; a network with them is not cut (<paramref name="keep"/> must be null).
    /// </summary>
    public PlainModel ToPlain(IReadOnlyList<bool[]>? keep = null)
    {
        if (keep is not null && _branches.Any(b => b is not null))
            throw new RmException("a network with training-time branches is fine-tuned after pruning, not pruned: its branches would keep the dropped channels alive");
        using var noGrad = no_grad();
        var layers = new List<PlainLayer>();
        int convIndex = 0;
        foreach (var layer in _plan)
        {
            switch (layer)
            {
                case ConvLayer c:
                {
                    using var scope = NewDisposeScope();
                    var (conv, bn) = (_convs[convIndex], _scales[convIndex]);
                    var fused = _branches[convIndex] is { } branch
                        ? branch.Fuse(conv, bn)
                        : BatchNormFusion.Fuse(new ConvWeights(conv.weight!.detach(), null), bn.InferenceWeights());
                    layers.Add(c with { Weight = fused.Weight.to_type(ScalarType.Float32).MoveToOuterDisposeScope(), Bias = fused.BiasOrZeros().to_type(ScalarType.Float32).MoveToOuterDisposeScope() });
                    convIndex++;
                    break;
                }
                case LinearLayer:
                    layers.Add(new LinearLayer(_fc.weight!.detach().clone(), _fc.bias!.detach().clone()));
                    break;
                default:
                    layers.Add(layer);
                    break;
            }
        }
        var folded = new PlainModel(layers, InputChannels);
        return keep is null ? folded : ChannelRemoval.Remove(folded, keep);
    }
}
