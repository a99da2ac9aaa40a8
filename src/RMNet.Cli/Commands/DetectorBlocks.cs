using RMNet.IO;
using RMNet.RepBlocks;

namespace RMNet.Cli.Commands;

/// <summary>
/// convert, verify and inspect for a detector's checkpoint (YOLOv7's <c>RepConv</c>, YOLOv6's <c>RepVGGBlock</c>): a
/// partial conversion that rewrites only those blocks into their deploy form (see <see cref="RepBlockConversion"/>),
/// chosen when the checkpoint is of no family rmnet converts whole but has such blocks.
/// </summary>
internal static class DetectorBlocks
{
    public sealed record BlockJson(string Name, string Style, string Form, long OutChannels, long InChannelsPerGroup, bool Identity);

    public sealed record BlockCheckJson(string Block, double MaxAbsError, double MaxRelError, bool Passed);

    public sealed record VerificationJson(IReadOnlyList<BlockCheckJson> Blocks, double MaxAbsError, double MaxRelError, string? WorstBlock, int KeptTensors,
        IReadOnlyList<string> DifferingTensors, double Tolerance, bool Passed)
    {
        /// <summary>Convs outside the blocks whose BN the converted file folded in (YOLOv6's fuse_model), each checked.</summary>
        public int FoldedConvBns { get; init; }

        public static VerificationJson Of(RepBlockReport r) => new(r.Blocks.Select(b => new BlockCheckJson(b.Block, b.MaxAbsError, b.MaxRelError, b.Passed)).ToList(),
            r.Blocks.Select(b => b.MaxAbsError).DefaultIfEmpty(0).Max(), r.Worst?.MaxRelError ?? 0, r.Worst?.Block, r.KeptTensors, r.Differing, r.Tolerance, r.Passed)
        {
            FoldedConvBns = r.FoldedConvBns,
        };
    }

    public sealed record ConvertJson(string Input, string Output, string Architecture, int BlocksFused, int BlocksAlreadyDeploy, int TensorsKept,
        string BnEps, IReadOnlyList<BlockJson> Blocks, string Dtype, VerificationJson? Verification)
    {
        public string? Error { get; init; }
        public int? ExitCode { get; init; }
    }

    public sealed record InspectJson(string File, string Format, string Form, string Family, string Architecture, IReadOnlyList<BlockJson> Blocks,
        int OtherTensors, string WeightsDtype)
    {
        public string? WeightsKey { get; init; }
        public IReadOnlyList<string>? OtherWeightsKeys { get; init; }
        public string? RemovedPrefix { get; init; }
    }

    public sealed record VerifyJson(string Original, string Converted, string Architecture, long Seed, VerificationJson Verification);

    /// <summary>The <c>family</c> inspect reports.</summary>
    public const string Family = "detector-blocks";

    /// <summary>E.g. "a detector with 4 YOLOv7 RepConv blocks (2 in deploy form)".</summary>
    public static string Describe(IReadOnlyList<RepBlock> blocks)
    {
        var styles = blocks.Where(b => !b.Deploy).Select(b => b.StyleName).Distinct().ToList();
        int deploy = blocks.Count(b => b.Deploy);
        return $"a detector with {Count(blocks.Count, styles, "re-parameterised")}{(deploy > 0 && styles.Count > 0 ? $" ({deploy} in deploy form)" : "")}";
    }

    /// <summary>E.g. "1 YOLOv7 RepConv block", "7 blocks (YOLOv6 QARepVGGBlock, YOLOv6 RepVGGBlock)", "0 re-parameterisable blocks".</summary>
    static string Count(int n, IReadOnlyList<string> styles, string none)
    {
        string noun = n == 1 ? "block" : "blocks";
        return styles.Count switch
        {
            0 => $"{n} {none} {noun}",
            1 => $"{n} {styles[0]} {noun}",
            _ => $"{n} {noun} ({string.Join(", ", styles)})",
        };
    }

    /// <summary>Where the BatchNorms' epsilon came from, for the report.</summary>
    static string EpsSource(StateDict sd, double? bnEps) =>
        sd.SavedBatchNormEps.Count > 0 ? $"as the whole module saved them ({string.Join(", ", sd.SavedBatchNormEps.Values.Distinct().Select(Format.Sci))})"
        : bnEps is double e ? $"{Format.Sci(e)} (--bn-eps)"
        : $"{Format.Sci(RepBlockConversion.DefaultBnEps)} (YOLOv7's and YOLOv6's; a state dict does not hold it, --bn-eps sets another)";

    static List<BlockJson> Blocks(StateDict sd, IReadOnlyList<RepBlock> blocks) => blocks.Select(b =>
    {
        var w = sd[b.Deploy ? b.Reparam + ".weight" : b.DenseConv + ".weight"];
        return new BlockJson((sd.RemovedPrefix ?? "") + b.Prefix, b.Deploy ? "deploy" : b.StyleName, b.Branches,
            w.shape[0], w.dim() > 1 ? w.shape[1] : 0, b.HasIdentity);
    }).ToList();

    /// <summary><c>rmnet convert</c> of a detector: its blocks fused, every other tensor kept, verified block by block with --verify.</summary>
    public static int Convert(CliContext ctx, string input, string output, PendingOutput pending, StateDict sd, double? bnEps, bool verify, double? tolerance,
        bool allowNonFinite, long seed = 0)
    {
        var blocks = RepBlockFinder.Find(sd);
        Models.WeightChecks.Check(sd, allowNonFinite, bnEps ?? RepBlockConversion.DefaultBnEps, savedEpsHonoured: true);
        string description = Describe(blocks);
        ctx.Progress.Stage($"fusing the blocks of {input}");
        var result = RepBlockConversion.Convert(sd, blocks, bnEps, ctx.Cancellation);
        ctx.Progress.Stage($"writing {output}");
        RepBlockConversion.Save(pending.TempPath, output, result.Tensors, $"rmnet: {result.Fused} blocks fused into their deploy form (rbr_reparam) from {Path.GetFileName(input)}", ctx.Cancellation);
        string dtype = WeightDtypes.Describe(WeightDtypes.Of(pending.TempPath));
        RepBlockReport? report = null;
        if (verify)
        {
            double bound = tolerance ?? DefaultTolerance(sd, blocks);
            ctx.Progress.Stage($"verifying {output} block by block");
            using var written = CheckpointReader.Read(pending.TempPath);
            report = RepBlockVerification.Verify(sd, blocks, written, bnEps, bound, seed, ctx.Cancellation);
        }
        string? refusal = report is { Passed: false } ? $"{output}: {Failure(report)}; nothing written" : null;
        ctx.Document(new ConvertJson(input, output, description, result.Fused, result.AlreadyDeploy, result.Kept, EpsSource(sd, bnEps), Blocks(sd, blocks), dtype,
            report is null ? null : VerificationJson.Of(report)) { Error = refusal, ExitCode = refusal is null ? null : ExitCodes.NotEquivalent });
        ctx.Line($"converted {input}: {description}; rmnet rewrites only these blocks, not the detector");
        var fusedKinds = blocks.Where(b => !b.Deploy).Select(b => b.StyleName).Distinct().ToList();
        ctx.Line($"  {Count(result.Fused, fusedKinds, "re-parameterisable")} fused{(result.AlreadyDeploy > 0 ? $", {result.AlreadyDeploy} already in deploy form" : "")}, {result.Kept} tensors kept as they are ({dtype} weights)");
        ctx.Line($"  BatchNorm eps: {EpsSource(sd, bnEps)}");
        if (report is not null) ctx.Line(Text(report));
        return ConvertCommand.Finish(ctx, pending, output, refusal);
    }

    /// <summary>Half-precision blocks are held to float16's tolerance, as convert --dtype float16 is; others to float32's.</summary>
    static double DefaultTolerance(StateDict sd, IReadOnlyList<RepBlock> blocks) =>
        blocks.Any(b => !b.Deploy && sd[b.DenseConv + ".weight"].dtype is TorchSharp.torch.ScalarType.Float16 or TorchSharp.torch.ScalarType.BFloat16)
            ? OutputDtype.Float16.DefaultTolerance() : OutputDtype.Float32.DefaultTolerance();

    /// <summary>
    /// <c>rmnet verify</c> of a detector's deploy file against its checkpoint, block by block; <paramref name="tolerance"/>
    /// is the given one, else float16's where either file's blocks are half precision (<paramref name="halfConverted"/>).
    /// </summary>
    public static int Verify(CliContext ctx, string original, string converted, StateDict sd, double? bnEps, double? tolerance, bool halfConverted, long seed,
        int samples = RepBlockVerification.DefaultSamples, int size = RepBlockVerification.DefaultSize)
    {
        var blocks = RepBlockFinder.Find(sd);
        double bound = tolerance ?? (halfConverted ? OutputDtype.Float16.DefaultTolerance() : DefaultTolerance(sd, blocks));
        using var other = CheckpointLoading.Read(ctx, converted, null);
        var report = RepBlockVerification.Verify(sd, blocks, other, bnEps, bound, seed, ctx.Cancellation, samples, size);
        ctx.Document(new VerifyJson(original, converted, Describe(blocks), seed, VerificationJson.Of(report)));
        ctx.Line($"{converted} against {original} ({Describe(blocks)}; the blocks one by one, BatchNorm eps {EpsSource(sd, bnEps)})");
        ctx.Line(Text(report));
        if (report.Passed) return ExitCodes.Success;
        ctx.Err.WriteLine($"rmnet: error: {converted}: {Failure(report)}");
        return ExitCodes.NotEquivalent;
    }

    /// <summary><c>rmnet inspect</c> of a detector's checkpoint: its blocks and their form.</summary>
    public static int Inspect(CliContext ctx, string path, FileFormat format, StateDict sd, string dtype)
    {
        var blocks = RepBlockFinder.Find(sd);
        int deploy = blocks.Count(b => b.Deploy);
        string form = deploy == blocks.Count ? "deploy" : deploy == 0 ? "multi-branch" : "multi-branch (partly deploy)";
        // Tensors of no block: neither a branch nor a deploy form's rbr_reparam.
        int others = sd.Keys.Count(k => !blocks.Any(b => k.StartsWith(b.Prefix + ".rbr_", StringComparison.Ordinal)));
        var json = new InspectJson(path, format == FileFormat.Safetensors ? "safetensors" : "pytorch", form, Family, Describe(blocks), Blocks(sd, blocks), others, dtype)
        {
            WeightsKey = sd.WeightsKey, OtherWeightsKeys = sd.OtherWeightsKeys is { Count: > 0 } keys ? keys : null, RemovedPrefix = sd.RemovedPrefix,
        };
        ctx.Document(json);
        ctx.Line($"{path}: {json.Architecture}, {form}, {dtype} weights; {others} other tensors " +
            (deploy == blocks.Count ? "(the blocks are in deploy form already: convert passes them through)" : "(rmnet rewrites only the blocks: convert gives their deploy form)"));
        if (CheckpointLoading.Note(sd) is { } note) ctx.Line($"  {note[(path.Length + 2)..]}");
        var rows = new List<string[]> { new[] { "block", "kind", "out", "in/groups", "branches" } };
        rows.AddRange(json.Blocks.Select(b => new[] { b.Name, b.Style, b.OutChannels.ToString(), b.InChannelsPerGroup.ToString(), b.Form }));
        foreach (var line in Format.Table(rows)) ctx.Line("  " + line);
        return ExitCodes.Success;
    }

    static string Text(RepBlockReport r) =>
        $"verification: {r.Blocks.Count} {(r.Blocks.Count == 1 ? "block" : "blocks")} on {r.Inputs.Samples} seeded {r.Inputs.Size}x{r.Inputs.Size} inputs each, max rel error {Format.Sci(r.Worst?.MaxRelError ?? 0)}" +
        (r.Worst is { } w ? $" ({w.Block})" : "") +
        $", {r.KeptTensors - r.Differing.Count(d => d.EndsWith("missing", StringComparison.Ordinal) || d.Contains("' differs", StringComparison.Ordinal))} of {r.KeptTensors} other tensors identical" +
        (r.WidenedTensors > 0 ? $" ({r.WidenedTensors} of them in a wider type, the same values)" : "") +
        (r.FoldedConvBns > 0 ? $", {r.FoldedConvBns} {(r.FoldedConvBns == 1 ? "conv outside the blocks with its" : "convs outside the blocks with their")} BN folded in (as the projects' fuse steps leave them; checked)" : "") +
        $" (tolerance {Format.Sci(r.Tolerance)}): {(r.Passed ? "EQUIVALENT" : "NOT EQUIVALENT")}";

    static string Failure(RepBlockReport r) =>
        r.Differing.Count > 0 ? $"{r.Differing.Count} tensor(s) outside the blocks not the original's ({string.Join(", ", r.Differing.Take(3))}{(r.Differing.Count > 3 ? ", ..." : "")})"
        : $"block '{r.Worst!.Block}' differs from its branches (max rel error {Format.Sci(r.Worst.MaxRelError)} > {Format.Sci(r.Tolerance)})";
}
