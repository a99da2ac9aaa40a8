using RMNet.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RMNet.Blocks;

/// <summary>
/// A torchvision-layout ResNet as a TorchSharp module, with torchvision's parameter names (conv1, bn1,
/// layer1..layerN, fc), so a PyTorch state dict loads unchanged. This is the original, residual network.
/// In eval mode (the default) it runs without autograd; in training mode it trains like any module.
/// </summary>
internal sealed class ResNet : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // names mirror torchvision's state-dict keys
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential[] stages;   // registered as layer1..layerN
    private readonly Linear fc;
    private ChannelGates? gates;
#pragma warning restore IDE1006

    /// <summary>Builds the layout with freshly initialised weights (eval mode).</summary>
    public ResNet(ResNetSpec spec) : base(spec.DisplayName)
    {
        Spec = spec;
        conv1 = Conv2d(spec.InputChannels, spec.StemWidth, spec.StemKernel, stride: spec.StemStride, padding: spec.StemPadding, bias: false);
        bn1 = BatchNorm2d(spec.StemWidth);
        stages = new Sequential[spec.StageCount];
        for (int s = 0; s < stages.Length; s++)
        {
            var blocks = spec.Blocks().Where(b => b.Stage == s).Select(b => (b.Prefix.Split('.')[1], MakeBlock(spec, b)));
            stages[s] = Sequential(blocks);
        }
        fc = Linear(spec.FeatureChannels, spec.NumClasses);
        // Registered by hand, in torchvision's order, because the number of stages varies.
        register_module("conv1", conv1);
        register_module("bn1", bn1);
        for (int s = 0; s < stages.Length; s++) register_module($"layer{s + 1}", stages[s]);
        register_module("fc", fc);
        eval();
    }

    /// <summary>The layout this module was built from.</summary>
    public ResNetSpec Spec { get; }

    /// <summary>The stem's gates (<c>stem</c>) added by <see cref="AddGates"/>, or null.</summary>
    public ChannelGates? Gates => gates;

    /// <summary>The blocks, in order.</summary>
    public IEnumerable<Module<Tensor, Tensor>> Blocks => stages.SelectMany(s => s.children().Cast<Module<Tensor, Tensor>>());

    /// <summary>
    /// Adds a learnable gate, starting at 1, to every channel of the network's plain form: the stem's output and
    /// each Basic block's inner, reserved and output channels (<see cref="BasicBlock.AddGates"/>). RM pruning
    /// trains these gates with the network still residual and removes the channels whose gate went to zero.
    /// </summary>
    public void AddGates()
    {
        if (Spec.Block != BlockKind.Basic) throw new RmException("channel gates are implemented for Basic-block ResNets");
        if (gates is not null) return;
        gates = new ChannelGates(("stem", Spec.StemWidth));
        register_module("gates", gates);
        foreach (var block in Blocks) ((BasicBlock)block).AddGates();
    }

    /// <summary>Builds the layout and loads the state dict's weights (as float32).</summary>
    public static ResNet FromStateDict(ResNetSpec spec, StateDict sd)
    {
        ResNetDetector.Validate(sd, spec);
        var model = new ResNet(spec);
        model.load_state_dict(sd.ToModuleWeights(), strict: false);
        return model;
    }

    static Module<Tensor, Tensor> MakeBlock(ResNetSpec spec, BlockSpec b) => spec.Block == BlockKind.Basic
        ? new BasicBlock(b.InChannels, b.OutChannels, b.Stride, spec.SeChannels?[b.Stage], b.Width)
        : new Bottleneck(b.InChannels, b.Width, b.OutChannels, b.Stride, b.Groups, spec.SeChannels?[b.Stage]);

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using IDisposable? noGrad = training ? null : no_grad();
        using var scope = NewDisposeScope();
        var y = bn1.forward(conv1.forward(x));
        if (gates is not null) y = gates.Apply("stem", y);
        y = functional.relu(y);
        if (Spec.StemMaxPool) y = functional.max_pool2d(y, new long[] { 3, 3 }, new long[] { 2, 2 }, new long[] { 1, 1 });
        foreach (var stage in stages) y = stage.forward(y);
        y = y.mean(new long[] { 2, 3 }).flatten(1);
        return fc.forward(y).MoveToOuterDisposeScope();
    }
}
