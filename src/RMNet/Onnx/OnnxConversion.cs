using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// The ONNX-in, ONNX-out conversion: graph-level RM (<see cref="GraphRm"/>) plus the bookkeeping of a
/// well-behaved converter: graph inputs, outputs, names, shapes, element types, opset, IR version and metadata
/// are kept; the producer fields name rmnet and the transform is recorded in <c>doc_string</c>.
/// </summary>
internal static class OnnxConversion
{
    /// <summary>
    /// Reads <paramref name="input"/>, converts it, and returns the result (not yet written), with the summaries of the
    /// input and of the converted graph (costs at <paramref name="inputSize"/> where H and W are dynamic, and joins).
    /// </summary>
    public static GraphRmResult Convert(string input, Rm.RmMode mode = Rm.RmMode.Grouped, int inputSize = 224,
        Rm.NegativeInputMode negative = Rm.NegativeInputMode.PRelu) =>
        Convert(OnnxModelFile.Load(input), input, mode, inputSize, negative);

    /// <summary>
    /// A checkpoint's <paramref name="lowered"/> graph converted in place; where <paramref name="originalPath"/> is given, a
    /// copy is written there first, as the original that verification runs (the graph is built once, not twice).
    /// </summary>
    public static GraphRmResult ConvertLowered(ModelProto lowered, string input, Rm.RmMode mode, int inputSize, string? originalPath,
        Rm.NegativeInputMode negative = Rm.NegativeInputMode.PRelu)
    {
        if (originalPath is not null) OnnxModelFile.Save(lowered.Clone(), originalPath);
        return Convert(lowered, input, mode, inputSize, negative);
    }

    /// <summary>
    /// As <see cref="Convert(string, Rm.RmMode, int, Rm.NegativeInputMode)"/>, for a model in memory (a checkpoint lowered into the graph,
    /// see <c>Lowering/</c>), rewritten in place; <paramref name="input"/> names its source in messages. <paramref name="negative"/>
    /// is how block inputs that may be negative are carried (<see cref="GraphCarryRm"/>). <paramref name="progress"/> is told, and
    /// <paramref name="cancellationToken"/> checked, after each residual block.
    /// </summary>
    public static GraphRmResult Convert(ModelProto model, string input, Rm.RmMode mode = Rm.RmMode.Grouped, int inputSize = 224,
        Rm.NegativeInputMode negative = Rm.NegativeInputMode.PRelu, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default)
    {
        string producer = (model.ProducerName + " " + model.ProducerVersion).Trim();
        // Summarised before the passes, which rewrite the model in place.
        var before = OnnxSummary.Of(model, input, inputSize);
        int done = 0, total = before.Residuals.Count;
        void BlockDone()
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new ProgressStep("converting", Math.Min(++done, total), total));
        }
        var (inlined, _) = InlineAliases.Run(model, input);
        // ECA gates as exported become the SE form (their Shape arithmetic then unread), which the carry pass takes.
        if (EcaGates.Run(inlined, input) > 0) DeadNodes.Run(inlined, input);
        // DBB's branches as PyTorch exports them (BNAndPad's border writes, average pools, 1x1-kxk pairs) become convs the merge reads.
        if (ShapeConstants.Run(inlined, input) > 0) BorderWrites.Run(inlined, input);
        AveragePoolAsConv.Run(inlined, input);
        PointwiseThenConv.Run(inlined, input);
        var (branchesMerged, merged) = GraphBranchMerge.Run(inlined, input);
        var rm = GraphRm.Transform(branchesMerged, input, mode, BlockDone);
        // Blocks the ReLU-only pass cannot take (negative inputs, BN or other activations in the branch) go to the carry pass.
        var (carried, carryBlocks) = GraphCarryRm.Run(rm.Model, input, mode, negative, BlockDone);
        var carriedNames = carryBlocks.Select(b => b.Name).ToHashSet();
        var blocks = rm.Blocks.Where(b => !carriedNames.Contains(b.Name)).Concat(carryBlocks).ToList();
        // The merge convs leave BNs and 1x1 convs right after convs (pre-activation blocks, IResNet's head): fold them.
        GraphLinearFold.Run(carried, input);
        FlattenToReshape.Run(carried, input);
        carried.ProducerName = "rmnet";
        carried.ProducerVersion = OnnxExporter.Version;
        var after = OnnxSummary.Of(carried, input, inputSize);
        var joins = JoinReport.Account(before.Joins, after.Joins, blocks);
        // Counted on the graphs, not per pass: several passes fold BNs (the RM passes, the linear fold, DBB's pair merge, the branch merge).
        int folded = Math.Max(0, before.OpCounts.GetValueOrDefault("BatchNormalization") - after.OpCounts.GetValueOrDefault("BatchNormalization"));
        var result = rm with { Model = carried, FoldedBatchNorms = folded, Blocks = blocks, MergedBranches = merged, Joins = joins,
            JoinsFound = before.Residuals.Count, Input = before, Output = after };
        string note = $"rmnet {OnnxExporter.Version}: {result.JoinsFound - result.JoinsRemaining} of {result.JoinsFound} residual joins made plain (RM, {mode.ToString().ToLowerInvariant()} form), " +
            $"{result.FoldedBatchNorms} BatchNormalization nodes folded, {merged} parallel-branch sums merged; converted from '{Path.GetFileName(input)}' " +
            $"(producer '{producer}')";
        carried.DocString = string.IsNullOrEmpty(carried.DocString) ? note : carried.DocString + "\n" + note;
        // Conv and Relu exist since opset 1: the model's own opset is never too old for what was added.
        return result;
    }
}
