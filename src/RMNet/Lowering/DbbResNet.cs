using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// The DBB repository's ResNet (its <c>resnet.py</c>) with <c>conv_bn</c> / <c>conv_bn_relu</c> switched to a
/// reparameterisable block (<see cref="AcBlock"/> or <see cref="DiverseBranchBlock"/>). That switch leaves 1x1 kernels
/// and kernels of 7 and above a plain ConvBN (<c>.conv</c> + <c>.bn</c>, in deploy form <c>.conv</c> with bias), so only
/// the 3x3 convs are blocks: stem <c>stage0.conv1</c> (7x7 ConvBN, stride 2) + ReLU and a 3x3 max pool; stages
/// <c>stage1</c> .. (stride 1, then 2 in each later stage's first block) of Basic blocks (<c>conv1</c> 3x3 block with
/// the stride + ReLU, <c>conv2</c> 3x3 block) or Bottleneck blocks (<c>conv1</c> 1x1 ConvBN + ReLU, <c>conv2</c> 3x3
/// block with the stride + ReLU, <c>conv3</c> 1x1 ConvBN), each plus <c>shortcut</c> (a strided 1x1 ConvBN, or the
/// identity) and a ReLU; global average pool <c>gap</c> and <c>linear</c>.
/// </summary>
internal static class DbbResNet
{
    static readonly ReparamBlockKind[] Kinds = { AcBlock.Kind, DiverseBranchBlock.Kind };

    /// <summary>True for the names of the DBB repository's ResNet built of a block rmnet knows.</summary>
    public static bool Matches(StateDict sd) =>
        sd.ContainsKey("stage0.conv1.conv.weight") && sd.ContainsKey("linear.weight") && KindOf(sd) is not null;

    /// <summary>E.g. "DBB (DiverseBranchBlock) ResNet (the DBB repository's), Basic blocks 2-2-2-2, 1000 classes".</summary>
    public static string Describe(StateDict sd)
    {
        var kind = KindOf(sd)!;
        return $"{kind.Family} ResNet (the DBB repository's){(kind.Deployed(sd, FirstBlock(sd)) ? " (deploy form)" : "")}, " +
            $"{(Bottleneck(sd) ? "Bottleneck" : "Basic")} blocks {string.Join("-", Depths(sd))}, {sd.Require("linear.weight").shape[0]} classes";
    }

    /// <summary>The network as a graph, with <paramref name="eps"/> the BatchNorms' epsilon (PyTorch's 1e-5).</summary>
    public static ModelProto Lower(StateDict sd, double eps = 1e-5)
    {
        var kind = KindOf(sd)!;
        bool bottleneck = Bottleneck(sd);
        var g = new GraphBuilder(sd);
        long inputChannels = sd.Require("stage0.conv1.conv.weight").shape[1];
        string x = g.Relu(g.ConvBnModule(g.Input, "stage0.conv1", 2, eps), "stage0.conv1.nonlinear");
        x = g.MaxPool(x, "stage0.maxpool", 3, 2, 1);
        var depths = Depths(sd);
        for (int s = 0; s < depths.Count; s++)
            for (int b = 0; b < depths[s]; b++)
            {
                // resnet.py: the first block of every stage after stage1 halves the size; strides are not in a state dict.
                int stride = s > 0 && b == 0 ? 2 : 1;
                string p = $"stage{s + 1}.{b}";
                x = bottleneck ? BottleneckBlock(g, sd, kind, p, x, stride, eps) : BasicBlock(g, sd, kind, p, x, stride, eps);
            }
        g.Classifier(x, "linear");
        return g.Build(inputChannels, sd.Require("linear.weight").shape[0], $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {Describe(sd)}");
    }

    /// <summary>Stages <c>stage1</c> ... and their blocks (the stem <c>stage0</c> is no stage of blocks).</summary>
    public static LoweredLayout Layout(StateDict sd) => LoweredLayout.Of(Depths(sd), i => $"stage{i + 1}");

    static string BasicBlock(GraphBuilder g, StateDict sd, ReparamBlockKind kind, string p, string x, int stride, double eps)
    {
        var first = kind.MainKernel(sd, $"{p}.conv1");
        string y = g.Relu(kind.LowerBlock(g, sd, $"{p}.conv1", x, stride, 1, eps), $"{p}.conv1.nonlinear");
        y = kind.LowerBlock(g, sd, $"{p}.conv2", y, 1, 1, eps);
        return Join(g, sd, p, x, y, stride, first.shape[1], first.shape[0], eps);
    }

    static string BottleneckBlock(GraphBuilder g, StateDict sd, ReparamBlockKind kind, string p, string x, int stride, double eps)
    {
        string y = g.Relu(g.ConvBnModule(x, $"{p}.conv1", 1, eps), $"{p}.conv1.nonlinear");
        y = g.Relu(kind.LowerBlock(g, sd, $"{p}.conv2", y, stride, 1, eps), $"{p}.conv2.nonlinear");
        y = g.ConvBnModule(y, $"{p}.conv3", 1, eps);
        return Join(g, sd, p, x, y, stride, sd.Require($"{p}.conv1.conv.weight").shape[1], sd.Require($"{p}.conv3.conv.weight").shape[0], eps);
    }

    /// <summary>
    /// The block's output <paramref name="y"/> plus its shortcut on <paramref name="x"/>, then ReLU. resnet.py projects
    /// where the stride or the width changes; a checkpoint without the projection there is refused naming its tensor.
    /// </summary>
    static string Join(GraphBuilder g, StateDict sd, string p, string x, string y, int stride, long inChannels, long outChannels, double eps)
    {
        bool projection = stride != 1 || inChannels != outChannels || sd.Keys.Any(k => k.StartsWith($"{p}.shortcut.", StringComparison.Ordinal));
        string shortcut = projection ? g.ConvBnModule(x, $"{p}.shortcut", stride, eps) : x;
        return g.Relu(g.Sum(y, shortcut, $"{p}.add"), $"{p}.relu");
    }

    /// <summary>The block whose kind names the network: Basic's <c>conv1</c> or Bottleneck's <c>conv2</c> in <c>stage1.0</c>.</summary>
    static string FirstBlock(StateDict sd) => Bottleneck(sd) ? "stage1.0.conv2" : "stage1.0.conv1";

    static ReparamBlockKind? KindOf(StateDict sd) => Kinds.FirstOrDefault(k => k.IsAt(sd, FirstBlock(sd)));

    // Bottleneck's conv3 is a 1x1 ConvBN in either form; Basic blocks have no conv3.
    static bool Bottleneck(StateDict sd) => sd.ContainsKey("stage1.0.conv3.conv.weight");

    static List<int> Depths(StateDict sd) =>
        StageDepths.Count((s, b) => sd.Keys.Any(k => k.StartsWith($"stage{s}.{b}.", StringComparison.Ordinal)), first: 1);
}
