namespace RMNet.Lowering;

/// <summary>
/// What a lowered checkpoint's report needs of its layout, read from its names: the module prefix of each stage, which
/// also starts the name of every graph node the stage's blocks become (see <see cref="Onnx.GraphStageCost"/>), and
/// the number of blocks.
/// </summary>
/// <param name="StagePrefixes">E.g. <c>layer1</c> ... <c>layer4</c>, in network order.</param>
/// <param name="Blocks">Residual (or, for RepVGG, multi-branch) blocks in all.</param>
internal sealed record LoweredLayout(IReadOnlyList<string> StagePrefixes, int Blocks)
{
    /// <summary>The stage a prefix's nodes are counted in, where not the prefix itself (MobileNetV2's blocks <c>features.i</c> are one stage, <c>blocks</c>).</summary>
    public IReadOnlyDictionary<string, string>? StageNames { get; init; }

    /// <summary>The layout of stages named <paramref name="stage"/>(i) for i = 0, 1, ... with <paramref name="depths"/> blocks, plus <paramref name="extraBlocks"/> (a RepVGG stem).</summary>
    public static LoweredLayout Of(IReadOnlyList<int> depths, Func<int, string> stage, int extraBlocks = 0) =>
        new(depths.Select((_, i) => stage(i)).ToList(), depths.Sum() + extraBlocks);

    /// <summary>torchvision's stage names <c>layer1</c>, <c>layer2</c>, ... for blocks in stages <paramref name="blockStages"/> (0-based, one per block).</summary>
    public static LoweredLayout Layers(IReadOnlyList<int> blockStages) =>
        new(blockStages.Distinct().Order().Select(s => $"layer{s + 1}").ToList(), blockStages.Count);

    /// <summary>
    /// The stage of each of <paramref name="nodes"/> (names, in network order): the prefix that starts its name (followed by
    /// '.'), else the stage of the node before it, <c>stem</c> before the first stage and <c>head</c> after the last.
    /// </summary>
    public string[] StagesOf(IReadOnlyList<string> nodes)
    {
        var matched = nodes.Select(n => StagePrefixes.FirstOrDefault(p => n.StartsWith(p + ".", StringComparison.Ordinal))).ToArray();
        int last = Array.FindLastIndex(matched, s => s is not null);
        var stages = new string[nodes.Count];
        string current = "stem";
        for (int i = 0; i < nodes.Count; i++)
            stages[i] = current = matched[i] is { } prefix ? StageNames?.GetValueOrDefault(prefix) ?? prefix : i > last ? "head" : current;
        return stages;
    }
}
