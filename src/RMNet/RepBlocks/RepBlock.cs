namespace RMNet.RepBlocks;

/// <summary>Whose names a re-parameterisable block has.</summary>
internal enum RepBlockStyle
{
    /// <summary>YOLOv7's <c>RepConv</c>: branches <c>rbr_dense.0</c> (conv) / <c>.1</c> (BN) and <c>rbr_1x1.0</c> / <c>.1</c>.</summary>
    YoloV7RepConv,

    /// <summary>YOLOv6's <c>RepVGGBlock</c>: <c>ConvModule</c> branches <c>rbr_dense.conv</c> / <c>.bn</c> and <c>rbr_1x1.conv</c> / <c>.bn</c>.</summary>
    YoloV6RepVgg,

    /// <summary>
    /// YOLOv6's <c>QARepVGGBlock</c> (and <c>QARepVGGBlockV2</c>): <c>rbr_dense.conv</c> / <c>.bn</c>, a bare 1x1 conv
    /// <c>rbr_1x1</c>, an identity without BN, in V2 a 3x3 average pool <c>rbr_avg</c>, and a BN <c>bn</c> after the sum,
    /// which the deploy form keeps.
    /// </summary>
    YoloV6QaRepVgg,
}

/// <summary>
/// One re-parameterisable block of a detector's state dict: the sum of a 3x3 conv + BN (<c>rbr_dense</c>), a 1x1
/// conv + BN (<c>rbr_1x1</c>) and, where the block keeps its width at stride 1, an identity BN (<c>rbr_identity</c>);
/// or its deploy form, one 3x3 conv with bias (<c>rbr_reparam</c>). A QARepVGG block's 1x1 conv and identity have no
/// BN, and its V2 adds a 3x3 average pool.
/// </summary>
/// <param name="Prefix">The block's module name, e.g. <c>model.24</c> (as the state dict names it, wrapper prefix removed).</param>
/// <param name="Style">Whose names its branches have (meaningless in deploy form).</param>
/// <param name="Deploy">True where the block is already one conv.</param>
/// <param name="HasIdentity">True where it has the identity branch (a BN, or in QARepVGG the input itself).</param>
/// <param name="HasAverage">True where it has QARepVGGBlockV2's average pool (3x3, stride 1, padding 1, counting the padding).</param>
/// <param name="ClassName">The block's class as a whole module saved it (e.g. <c>QARepVGGBlockV2</c>); null for a state dict.</param>
internal sealed record RepBlock(string Prefix, RepBlockStyle Style, bool Deploy, bool HasIdentity, bool HasAverage = false, string? ClassName = null)
{
    /// <summary>True for QARepVGG's blocks, whose 1x1 conv and identity have no BN.</summary>
    public bool BareOneByOne => Style == RepBlockStyle.YoloV6QaRepVgg;

    /// <summary>The 3x3 branch's conv module.</summary>
    public string DenseConv => Style == RepBlockStyle.YoloV7RepConv ? $"{Prefix}.rbr_dense.0" : $"{Prefix}.rbr_dense.conv";

    /// <summary>The 3x3 branch's BN module.</summary>
    public string DenseBn => Style == RepBlockStyle.YoloV7RepConv ? $"{Prefix}.rbr_dense.1" : $"{Prefix}.rbr_dense.bn";

    /// <summary>The 1x1 branch's conv module.</summary>
    public string OneByOneConv => Style switch
    {
        RepBlockStyle.YoloV7RepConv => $"{Prefix}.rbr_1x1.0",
        RepBlockStyle.YoloV6QaRepVgg => $"{Prefix}.rbr_1x1",
        _ => $"{Prefix}.rbr_1x1.conv",
    };

    /// <summary>The 1x1 branch's BN module (none in QARepVGG: see <see cref="BareOneByOne"/>).</summary>
    public string OneByOneBn => Style == RepBlockStyle.YoloV7RepConv ? $"{Prefix}.rbr_1x1.1" : $"{Prefix}.rbr_1x1.bn";

    /// <summary>The identity branch's BN module (in QARepVGG a parameterless <c>nn.Identity</c>).</summary>
    public string Identity => $"{Prefix}.rbr_identity";

    /// <summary>The deploy form's conv module, as both projects name it.</summary>
    public string Reparam => $"{Prefix}.rbr_reparam";

    /// <summary>E.g. "YOLOv7 RepConv".</summary>
    public string StyleName => Style switch
    {
        RepBlockStyle.YoloV7RepConv => "YOLOv7 RepConv",
        RepBlockStyle.YoloV6QaRepVgg => $"YOLOv6 {ClassName ?? "QARepVGGBlock"}",
        _ => "YOLOv6 RepVGGBlock",
    };

    /// <summary>The branches summed, e.g. "3x3 + 1x1 + identity + avg".</summary>
    public string Branches => Deploy ? "deploy" : "3x3 + 1x1" + (HasIdentity ? " + identity" : "") + (HasAverage ? " + avg" : "");

    /// <summary>True for the names of the block's training-form tensors (its branches), which the deploy form replaces.</summary>
    public bool OwnsBranchTensor(string key) => !Deploy && key.StartsWith(Prefix + ".rbr_", StringComparison.Ordinal);
}
