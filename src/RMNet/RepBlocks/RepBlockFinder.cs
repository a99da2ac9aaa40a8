using System.Text.RegularExpressions;

namespace RMNet.RepBlocks;

/// <summary>
/// Finds the re-parameterisable blocks of a detector's state dict (YOLOv7's <c>RepConv</c>, YOLOv6's
/// <c>RepVGGBlock</c>) from their names, and refuses, naming the block, one whose tensors are not those of either
/// project's block: a missing branch or BN tensor, a tensor neither block has, both forms at once, or YOLOv6's
/// <c>QARepVGGBlock</c>, whose identity (and, in <c>QARepVGGBlockV2</c>, average-pool) branch has no tensors, so a state
/// dict cannot say which branches the block had.
/// </summary>
internal static partial class RepBlockFinder
{
    [GeneratedRegex(@"^(.+)\.rbr_(?:dense|1x1|identity|reparam)\.")]
    private static partial Regex BranchName();

    static readonly string[] BnTensors = { "weight", "bias", "running_mean", "running_var" };

    /// <summary>
    /// True where <paramref name="sd"/> has <c>rbr_*</c> blocks and is not the official RepVGG classifier (the family
    /// <c>repvgg</c>, whose blocks share these names and which rmnet converts whole).
    /// </summary>
    public static bool Matches(StateDict sd) => !Models.RepVggSpec.Matches(sd) && sd.Keys.Any(k => BranchName().IsMatch(k));

    /// <summary>Every block, in the order of the state dict; a block that is not one of the two projects' is refused.</summary>
    public static List<RepBlock> Find(StateDict sd)
    {
        var prefixes = sd.Keys.Select(k => BranchName().Match(k)).Where(m => m.Success).Select(m => m.Groups[1].Value).Distinct().ToList();
        return prefixes.Select(p => Block(sd, p)).ToList();
    }

    static RepBlock Block(StateDict sd, string p)
    {
        // Messages name the block and its tensors as the file does, with any wrapper prefix the reader removed.
        string full = sd.RemovedPrefix ?? "";
        ModelInputException Refuse(string problem) => new(sd.Source, $"block '{full}{p}': {problem}");
        if (sd.ContainsKey($"{p}.rbr_1x1.weight") && sd.ContainsKey($"{p}.bn.running_var"))
            throw Refuse("a QARepVGG block (a bare 1x1 conv, a BN after the sum): its identity branch, and QARepVGGBlockV2's average pool, have no tensors, " +
                "so the state dict cannot say which branches it had; rmnet fuses YOLOv6's RepVGGBlock and YOLOv7's RepConv only");
        bool deploy = sd.ContainsKey($"{p}.rbr_reparam.weight");
        var style = sd.ContainsKey($"{p}.rbr_dense.0.weight") ? RepBlockStyle.YoloV7RepConv : RepBlockStyle.YoloV6RepVgg;
        if (deploy && sd.Keys.Any(k => k.StartsWith($"{p}.rbr_", StringComparison.Ordinal) && !k.StartsWith($"{p}.rbr_reparam.", StringComparison.Ordinal)))
            throw Refuse("has both the deploy form's 'rbr_reparam' and training-form branches");
        if (!deploy && !sd.ContainsKey($"{p}.rbr_dense.0.weight") && !sd.ContainsKey($"{p}.rbr_dense.conv.weight"))
            throw Refuse("no 3x3 branch: neither YOLOv7's 'rbr_dense.0.weight' nor YOLOv6's 'rbr_dense.conv.weight' (nor a deploy form's 'rbr_reparam.weight')");
        var block = new RepBlock(p, style, deploy, !deploy && sd.Keys.Any(k => k.StartsWith($"{p}.rbr_identity.", StringComparison.Ordinal)));
        // The tensors the block's branches have in the real code (each conv without bias; a BN's step counter optional).
        var expected = deploy
            ? new[] { $"{p}.rbr_reparam.weight", $"{p}.rbr_reparam.bias" }
            : new[] { block.DenseConv + ".weight", block.OneByOneConv + ".weight" }
                .Concat(new[] { block.DenseBn, block.OneByOneBn }.Concat(block.HasIdentity ? new[] { block.Identity } : Array.Empty<string>())
                    .SelectMany(bn => BnTensors.Select(t => $"{bn}.{t}"))).ToArray();
        if (expected.FirstOrDefault(k => !sd.ContainsKey(k)) is { } missing)
            throw Refuse($"missing tensor '{full}{missing}' of a {(deploy ? "deploy-form block" : block.StyleName)}");
        var allowed = expected.Concat(new[] { block.DenseBn, block.OneByOneBn, block.Identity }.Select(bn => bn + ".num_batches_tracked")).ToHashSet();
        if (sd.Keys.FirstOrDefault(k => k.StartsWith($"{p}.rbr_", StringComparison.Ordinal) && !allowed.Contains(k)) is { } extra)
            throw Refuse($"tensor '{full}{extra}' is not one a {(deploy ? "deploy-form block" : block.StyleName)} has");
        return block;
    }
}
