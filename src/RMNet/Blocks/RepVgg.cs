using RMNet.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RMNet.Blocks;

/// <summary>
/// The train-time RepVGG block with the official names: relu(rbr_dense(x) + rbr_1x1(x) + rbr_identity(x)),
/// <c>rbr_dense</c> = 3x3 conv + BN, <c>rbr_1x1</c> = 1x1 conv + BN, <c>rbr_identity</c> = BN (where shapes allow);
/// or, in deploy form, relu(rbr_reparam(x)).
/// </summary>
internal sealed class RepVggBlock : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror the official state-dict keys
    private readonly Sequential? rbr_dense;
    private readonly Sequential? rbr_1x1;
    private readonly BatchNorm2d? rbr_identity;
    private readonly Conv2d? rbr_reparam;
#pragma warning restore IDE1006

    /// <summary>A block as described by <paramref name="b"/>.</summary>
    public RepVggBlock(RepVggBlockSpec b) : base(nameof(RepVggBlock))
    {
        if (b.Deploy)
            rbr_reparam = Conv2d(b.InChannels, b.OutChannels, 3, stride: b.Stride, padding: 1, groups: b.Groups);
        else
        {
            rbr_dense = Sequential(("conv", Conv2d(b.InChannels, b.OutChannels, 3, stride: b.Stride, padding: 1, groups: b.Groups, bias: false)),
                ("bn", BatchNorm2d(b.OutChannels)));
            rbr_1x1 = Sequential(("conv", Conv2d(b.InChannels, b.OutChannels, 1, stride: b.Stride, groups: b.Groups, bias: false)),
                ("bn", BatchNorm2d(b.OutChannels)));
            if (b.HasIdentity) rbr_identity = BatchNorm2d(b.InChannels);
        }
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = rbr_reparam is not null ? rbr_reparam.forward(x) : rbr_dense!.forward(x) + rbr_1x1!.forward(x);
        if (rbr_identity is not null) y = y + rbr_identity.forward(x);
        return functional.relu(y).MoveToOuterDisposeScope();
    }
}

/// <summary>A RepVGG network with the official names (stage0..stage4, linear), the original for verification.</summary>
internal sealed class RepVgg : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror the official state-dict keys
    private readonly RepVggBlock stage0;
    private readonly Sequential stage1, stage2, stage3, stage4;
    private readonly Linear linear;
#pragma warning restore IDE1006

    /// <summary>Builds the layout (fresh weights, eval mode).</summary>
    public RepVgg(RepVggSpec spec) : base(spec.DisplayName)
    {
        stage0 = new RepVggBlock(spec.Blocks[0]);
        Sequential Stage(int s) => Sequential(spec.Blocks.Where(b => b.Stage == s).Select(b => (b.Prefix.Split('.')[1], (Module<Tensor, Tensor>)new RepVggBlock(b))));
        (stage1, stage2, stage3, stage4) = (Stage(1), Stage(2), Stage(3), Stage(4));
        linear = Linear(spec.Blocks[^1].OutChannels, spec.NumClasses);
        RegisterComponents();
        eval();
    }

    /// <summary>Builds the layout and loads the state dict (as float32).</summary>
    public static RepVgg FromStateDict(RepVggSpec spec, StateDict sd)
    {
        var model = new RepVgg(spec);
        var expected = model.state_dict().Keys.Where(k => !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList();
        foreach (var key in expected)
            if (!sd.ContainsKey(key)) throw new ModelInputException(sd.Source, $"missing key '{key}' expected for {spec.DisplayName}");
        model.load_state_dict(sd.ToModuleWeights(), strict: false);
        return model;
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var y = stage4.forward(stage3.forward(stage2.forward(stage1.forward(stage0.forward(x)))));
        return linear.forward(y.mean(new long[] { 2, 3 })).MoveToOuterDisposeScope();
    }
}
