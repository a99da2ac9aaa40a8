namespace RMNet.Lowering;

/// <summary>
/// ACNet's asymmetric convolution block (ACBlock): <c>square_conv</c> + <c>square_bn</c> (kxk), <c>ver_conv</c> +
/// <c>ver_bn</c> (kx1) and <c>hor_conv</c> + <c>hor_bn</c> (1xk), summed; in deploy form the one conv
/// <c>fused_conv</c> (with bias). The asymmetric convs are padded by k/2 along their long side only, so they read the
/// windows of the square kernel's centre column and row: the branch-merge pass adds them there.
/// </summary>
internal static class AcBlock
{
    /// <summary>The block kind, for networks built of it.</summary>
    public static readonly ReparamBlockKind Kind = new("ACNet (ACBlock)", "square_conv.weight", "fused_conv.weight", Lower);

    static readonly string[] Branches = { "square", "ver", "hor" };

    static string Lower(GraphBuilder g, StateDict sd, string p, string x, int stride, int groups, double eps) =>
        Kind.Deployed(sd, p) ? g.Conv(x, $"{p}.fused_conv", g.ReadConv($"{p}.fused_conv"), stride, groups)
        : g.SumAll(Branches.Select(b => g.ConvBn(x, $"{p}.{b}_conv", $"{p}.{b}_bn", stride, groups, eps)).ToList(), $"{p}.add");
}
