using System.Text.RegularExpressions;

namespace RMNet.RepBlocks;

/// <summary>
/// Finds the re-parameterisable blocks of a detector's state dict (YOLOv7's <c>RepConv</c>, YOLOv6's
/// <c>RepVGGBlock</c> and <c>QARepVGGBlock</c>/<c>V2</c>) from their names, and refuses, naming the block, one whose
/// tensors are not those of the projects' blocks: a missing branch or BN tensor, a tensor no block has, both forms at
/// once. A QARepVGG block's identity (and V2's average pool) has no tensors, so only a whole module's saved modules say
/// which branches it had: from a state dict it is refused.
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
        if (sd.ContainsKey($"{p}.rbr_1x1.weight"))
            return QaRepVgg(sd, p, Refuse);
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
        CheckTensors(sd, p, expected, new[] { block.DenseBn, block.OneByOneBn, block.Identity }, deploy ? "deploy-form block" : block.StyleName, Refuse);
        return block;
    }

    /// <summary>
    /// Refuses a block missing one of <paramref name="expected"/>, or with a branch tensor (<c>rbr_*</c>) that is neither one
    /// of them nor the step counter of a BN in <paramref name="bns"/>; <paramref name="kind"/> names the block in the message.
    /// </summary>
    static void CheckTensors(StateDict sd, string p, IReadOnlyList<string> expected, IEnumerable<string> bns, string kind, Func<string, ModelInputException> refuse)
    {
        string full = sd.RemovedPrefix ?? "";
        if (expected.FirstOrDefault(k => !sd.ContainsKey(k)) is { } missing)
            throw refuse($"missing tensor '{full}{missing}' of a {kind}");
        var allowed = expected.Concat(bns.Select(bn => bn + ".num_batches_tracked")).ToHashSet();
        if (sd.Keys.FirstOrDefault(k => k.StartsWith($"{p}.rbr_", StringComparison.Ordinal) && !allowed.Contains(k)) is { } extra)
            throw refuse($"tensor '{full}{extra}' is not one a {kind} has");
    }

    /// <summary>
    /// A QARepVGG block (a bare 1x1 conv <c>rbr_1x1</c>, a BN <c>bn</c> after the sum): its branches from the whole
    /// module's saved modules (<c>rbr_identity</c> an <c>Identity</c> or absent, <c>rbr_avg</c> PyTorch's 3x3 average pool
    /// of stride 1 and padding 1 that counts its padding, or absent).
    /// </summary>
    static RepBlock QaRepVgg(StateDict sd, string p, Func<string, ModelInputException> refuse)
    {
        if (!sd.SavedModules.TryGetValue(p, out var module))
            throw refuse("a QARepVGG block (a bare 1x1 conv, a BN after the sum): its identity branch, and QARepVGGBlockV2's average pool, have no tensors, " +
                "so a state dict (or a TorchScript archive) cannot say which branches it had; convert the checkpoint YOLOv6 saved (a whole module under 'model'/'ema'), or in PyTorch "
                + "torch.save(model, 'model.pt')");
        string? Class(string child) => sd.SavedModules.TryGetValue($"{p}.{child}", out var m) ? m.Class : null;
        if (Class("se") is { } se && se != "Identity")
            throw refuse($"its 'se' is a {se}: rmnet fuses QARepVGG blocks without SE (YOLOv6's raise on use_se)");
        if (Class("rbr_identity") is { } id && id != "Identity")
            throw refuse($"its 'rbr_identity' is a {id}, where QARepVGG's is an Identity");
        bool average = false;
        if (sd.SavedModules.TryGetValue($"{p}.rbr_avg", out var pool))
        {
            bool fits = pool.Class == "AvgPool2d" && pool.Integer("kernel_size") == 3 && pool.Integer("stride") == 1 && pool.Integer("padding") == 1
                && pool.Attributes.GetValueOrDefault("ceil_mode") is false && pool.Attributes.GetValueOrDefault("count_include_pad") is true
                && pool.Attributes.GetValueOrDefault("divisor_override") is null;
            if (!fits)
                throw refuse($"its 'rbr_avg' is not QARepVGGBlockV2's AvgPool2d(3, stride=1, padding=1) counting its padding (a {pool.Class} with " +
                    string.Join(", ", pool.Attributes.Where(a => a.Key is "kernel_size" or "stride" or "padding" or "ceil_mode" or "count_include_pad" or "divisor_override")
                        .Select(a => $"{a.Key}={(a.Value is long[] t ? $"({string.Join(", ", t)})" : a.Value)}")) + ")");
            average = true;
        }
        var block = new RepBlock(p, RepBlockStyle.YoloV6QaRepVgg, false, Class("rbr_identity") is not null, average, module.Class);
        var expected = new[] { block.DenseConv + ".weight", block.OneByOneConv + ".weight" }
            .Concat(new[] { block.DenseBn, $"{p}.bn" }.SelectMany(bn => BnTensors.Select(t => $"{bn}.{t}"))).ToArray();
        CheckTensors(sd, p, expected, new[] { block.DenseBn }, block.StyleName, refuse);
        return block;
    }
}
