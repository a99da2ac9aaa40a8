using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// timm's MobileOne (byobnet MobileOneBlock): stem <c>stem</c> (3x3, stride 2) and stages <c>stages.i.j</c> that
/// alternate a depthwise 3x3 block (stride 2 first in the stage) and a pointwise 1x1 block. A block in train form is
/// the sum of its <c>conv_scale</c> 1x1 branch (kxk blocks only), its over-parameterised branches
/// <c>conv_kxk.0</c>, <c>conv_kxk.1</c>, ... (each <c>.conv</c> + BN <c>.bn</c>) and, where it keeps its width and
/// size, the BN <c>identity</c>; in deploy form the conv <c>reparam_conv</c>; then ReLU. Head <c>head.fc</c>.
/// The layout and strides are timm RepVGG's (<see cref="TimmReparamBlock"/>); the depthwise blocks' groups follow
/// from their kernels.
/// </summary>
internal static class TimmMobileOne
{
    /// <summary>
    /// True for the names of timm's MobileOne: indexed <c>conv_kxk.N</c> branches, or in deploy form a pointwise
    /// (1x1) <c>reparam_conv</c> as every stage's second block (RepVGG's are 3x3).
    /// </summary>
    public static bool Matches(StateDict sd) =>
        sd.ContainsKey("head.fc.weight")
        && (sd.ContainsKey("stem.conv_kxk.0.conv.weight") && sd.ContainsKey("stages.0.0.conv_kxk.0.conv.weight")
            || sd.ContainsKey("stem.reparam_conv.weight") && sd.TryGetValue("stages.0.1.reparam_conv.weight", out var pointwise)
               && pointwise.dim() == 4 && pointwise.shape[2] == 1 && pointwise.shape[3] == 1);

    /// <summary>E.g. "timm MobileOne, stages of 4-16-20-2 blocks, 4 kxk branches, 1000 classes".</summary>
    public static string Describe(StateDict sd)
    {
        bool deployed = TimmReparamBlock.Deployed(sd, "stem");
        int branches = KxKBranches(sd, "stages.0.0");
        return $"timm MobileOne{(deployed ? " (deploy form)" : "")}, stages of {string.Join("-", TimmReparamBlock.Depths(sd, "conv_kxk.0"))} blocks" +
            $"{(deployed ? "" : $", {branches} kxk branch{(branches == 1 ? "" : "es")}")}, {sd.Require("head.fc.weight").shape[0]} classes";
    }

    /// <summary>The network as a graph, with <paramref name="eps"/> the BatchNorms' epsilon (timm's 1e-5).</summary>
    public static ModelProto Lower(StateDict sd, double eps = 1e-5) => TimmReparamBlock.Lower(sd, eps, p => Branches(sd, p), "conv_kxk.0", Describe(sd));

    /// <summary>Stages <c>stages.i</c>; the stem is a block too.</summary>
    public static LoweredLayout Layout(StateDict sd) => LoweredLayout.Of(TimmReparamBlock.Depths(sd, "conv_kxk.0"), i => $"stages.{i}", extraBlocks: 1);

    /// <summary>The scale branch (where there is one), then the kxk branches: the order MobileOneBlock adds them in.</summary>
    static IReadOnlyList<string> Branches(StateDict sd, string p) =>
        (sd.ContainsKey($"{p}.conv_scale.conv.weight") ? new[] { "conv_scale" } : Array.Empty<string>())
        .Concat(Enumerable.Range(0, KxKBranches(sd, p)).Select(i => $"conv_kxk.{i}")).ToList();

    static int KxKBranches(StateDict sd, string p)
    {
        int n = 0;
        while (sd.ContainsKey($"{p}.conv_kxk.{n}.conv.weight")) n++;
        return n;
    }
}
