using Onnx;
using RMNet.Models;

namespace RMNet.Lowering;

/// <summary>
/// RepVGG with the official names (<see cref="RepVggSpec"/>): blocks <c>stage0</c>, <c>stage1.0</c>, ... each the sum of
/// <c>rbr_dense</c> (3x3 conv + BN), <c>rbr_1x1</c> (1x1 conv + BN) and, where the block keeps its width and size, the BN
/// <c>rbr_identity</c>, then ReLU; or, in deploy form, the one conv <c>rbr_reparam</c> (with bias) and ReLU. Global
/// average pool and <c>linear</c>. The branch-merge pass makes each sum one conv.
/// </summary>
internal static class OfficialRepVgg
{
    /// <summary>The network as a graph (BatchNorm epsilon 1e-5, the official code's).</summary>
    public static ModelProto Lower(StateDict sd, RepVggSpec spec)
    {
        var g = new GraphBuilder(sd);
        string x = g.Input;
        foreach (var b in spec.Blocks)
        {
            string p = b.Prefix;
            if (b.Deploy)
            {
                x = g.Relu(g.Conv(x, $"{p}.rbr_reparam", g.ReadConv($"{p}.rbr_reparam"), b.Stride, b.Groups), $"{p}.nonlinearity");
                continue;
            }
            var terms = new List<string>
            {
                g.ConvBn(x, $"{p}.rbr_dense.conv", $"{p}.rbr_dense.bn", b.Stride, b.Groups, kernel: 3),
                g.ConvBn(x, $"{p}.rbr_1x1.conv", $"{p}.rbr_1x1.bn", b.Stride, b.Groups, kernel: 1),
            };
            if (b.HasIdentity) terms.Add(g.BatchNorm(x, $"{p}.rbr_identity"));
            x = g.Relu(g.SumAll(terms, $"{p}.add"), $"{p}.nonlinearity");
        }
        g.Classifier(x, "linear");
        return g.Build(3, spec.NumClasses, $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {spec.DisplayName}");
    }

    /// <summary>Stages <c>stage0</c> ... <c>stage4</c>.</summary>
    public static LoweredLayout Layout(RepVggSpec spec) =>
        new(spec.Blocks.Select(b => $"stage{b.Stage}").Distinct().ToList(), spec.Blocks.Count);
}
