using System.CommandLine;
using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;

namespace RMNet.Cli.Commands;

/// <summary><c>rmnet inspect</c>: what a checkpoint, plain model or ONNX file holds, and what it costs.</summary>
internal static class InspectCommand
{
    public sealed record BlockJson(string Name, int InChannels, int Width, int OutChannels, int Stride, int Groups, string Shortcut);

    public sealed record Result(string File, string Format, string Form, string? Architecture, int? NumClasses, IReadOnlyList<BlockJson>? Blocks,
        CostReport? Cost, int? Layers, IReadOnlyDictionary<string, int>? Operators, long? Opset, string? Producer,
        IReadOnlyList<StageCost>? Stages = null, string? Family = null, int? JoinsFound = null, IReadOnlyList<GraphJoin>? Joins = null,
        int? UncountedConvs = null)
    {
        /// <summary>Checkpoints: the key the weights were read from (null: the top level), other keys holding weights, a removed wrapper prefix.</summary>
        public string? WeightsKey { get; init; }
        public IReadOnlyList<string>? OtherWeightsKeys { get; init; }
        public string? RemovedPrefix { get; init; }
        /// <summary>The floating-point types the weights are stored in (<c>float32</c>, <c>float16</c>, or several joined by '+').</summary>
        public string? WeightsDtype { get; init; }
        /// <summary>Joins whose average-pooled shortcut has partial windows at the size inspected (RM not exact there); null where none.</summary>
        public IReadOnlyList<PartialShortcutPool>? PartialShortcutPools { get; init; }
    }

    public static Command Create(CommandIO io)
    {
        var file = new Argument<string>("file") { Description = "A checkpoint, a plain .safetensors or .pth written by rmnet, or an .onnx model" };
        var size = CommonOptions.InputSize();
        var weightsKey = CommonOptions.WeightsKey();
        var bnEps = CommonOptions.BnEps();
        var allowNonFinite = CommonOptions.AllowNonFinite();
        var json = CommonOptions.Json();
        var cmd = new Command("inspect", "Show the architecture, blocks, parameters and MACs of a model, and whether it is residual or plain")
        {
            file, size, weightsKey, bnEps, allowNonFinite, json,
        };
        cmd.SetAction(p =>
        {
            var ctx = io.Context(p, json);
            return ctx.Run(() => Run(ctx, p.GetValue(file)!, p.GetValue(size), p.GetValue(weightsKey), p.GetValue(bnEps), p.GetValue(allowNonFinite)));
        });
        return cmd;
    }

    static int Run(CliContext ctx, string path, int size, string? weightsKey, double? bnEps = null, bool allowNonFinite = false)
    {
        var format = FileFormats.Detect(path);
        if (weightsKey is not null && (format == FileFormat.Onnx || PlainModelFile.IsPlain(path)))
            throw new ModelInputException(path, "--weights-key applies to training checkpoints; this file has one set of weights");
        string dtype = WeightDtypes.Describe(WeightDtypes.Of(path));
        Result result;
        StateDict? sd = format == FileFormat.Onnx || PlainModelFile.IsPlain(path) ? null : CheckpointLoading.Read(ctx, path, weightsKey);
        if (sd is null && bnEps is not null) throw new ModelInputException(path, "--bn-eps applies to checkpoints that are lowered into the graph");
        if (sd is not null && RMNet.RepBlocks.RepBlockFinder.Matches(sd))
            using (sd)
                return DetectorBlocks.Inspect(ctx, path, format, sd, dtype);
        var lowered = sd is null ? null : CheckpointLoading.Lowered(ctx, sd, bnEps, allowNonFinite);
        if (format == FileFormat.Onnx || lowered is not null)
        {
            // The structure alone: no weight of external data is read and nothing is converted.
            var graph = lowered?.Lower();
            var s = graph is null ? OnnxSummary.Read(path, size) : OnnxSummary.Of(graph, path, size);
            int residual = s.Residuals.Count, gates = s.Gates.Count;
            // A lowered checkpoint's classes are its classifier's outputs; a re-parameterisable family's joins are branch sums.
            int? classes = graph?.Graph.Output[0].Type.TensorType.Shape.Dim is { Count: 2 } dims ? (int)dims[1].DimValue : null;
            string form = residual == 0 ? "plain" : lowered is { MultiBranch: true } ? "multi-branch" : "residual";
            lowered?.Dispose();
            result = new Result(path, lowered is null ? "onnx" : format == FileFormat.Safetensors ? "safetensors" : "pytorch", form,
                lowered?.Description, classes, null, CostReport.Of(s, FileFormats.ModelBytes(path)),
                s.OpCounts.Values.Sum(), s.OpCounts, lowered is null ? s.Opset : null, lowered is null ? s.Producer : null, JoinsFound: residual, Joins: s.Joins,
                UncountedConvs: s.UncountedConvs > 0 ? s.UncountedConvs : null) { WeightsDtype = dtype, PartialShortcutPools = s.PartialPools.Count > 0 ? s.PartialPools : null };
            ctx.Document(result);
            if (lowered is null)
                ctx.Line($"{path}: ONNX opset {s.Opset}, producer '{s.Producer}', {result.Form} ({residual} residual joins, {gates} gates), {dtype} weights");
            else
                ctx.Line($"{path}: {lowered.Description}, {result.Form} ({residual} residual joins, {gates} gates, as lowered into the graph), {dtype} weights");
            ctx.Line($"  inputs: {string.Join("; ", s.Inputs)}   outputs: {string.Join("; ", s.Outputs)}");
            ctx.Line($"  parameters: {Format.Count(s.Parameters)}   MACs @{s.InputSize}: {Format.Count(s.Macs)}   nodes: {string.Join(", ", s.OpCounts.Select(kv => $"{kv.Key} {kv.Value}"))}");
            if (s.UncountedConvs > 0)
                ctx.Line($"  note: MACs leave out {s.UncountedConvs} conv(s) whose spatial size could not be followed through the graph (e.g. past Reshape or Transpose)");
            foreach (var j in s.Joins)
                ctx.Line($"  {j.Kind} {j.Op} {j.Name}: {string.Join(j.Kind == "gate" ? " * " : " + ", j.Operands)}");
            foreach (var p in s.PartialPools)
                ctx.Line($"  not exact at {s.InputSize}x{s.InputSize}: {p.Join}'s shortcut pool {p.Pool} ({p.Window}x{p.Window}) sees a {p.Height}x{p.Width} map, partial windows " +
                    "that no conv kernel reproduces: the plain network equals the original only at sizes where every pooled map is even");
        }
        else if (PlainModelFile.IsPlain(path))
        {
            // rmnet's own files are checked as checkpoints are: a NaN written by hand (or a bad copy) is named, not summarised.
            if (!allowNonFinite)
                using (var weights = CheckpointReader.Read(path))
                    WeightChecks.Check(weights, allowNonFinite: false);
            var plain = PlainModelFile.Load(path);
            var ops = plain.Layers.GroupBy(l => l.Kind).ToDictionary(g => g.Key, g => g.Count());
            result = new Result(path, format == FileFormat.Safetensors ? "safetensors" : "pytorch", "plain", $"plain ({plain.Layers.Count} layers)",
                (int)plain.OutputSize(size, size), null, CostReport.Of(plain, size, FileFormats.ModelBytes(path)), plain.Layers.Count, ops, null, "rmnet",
                Stages: plain.CostByStage(size, size)) { WeightsDtype = dtype };
            ctx.Document(result);
            ctx.Line($"{path}: plain network written by rmnet, {plain.Layers.Count} layers ({string.Join(", ", ops.Select(kv => $"{kv.Key} {kv.Value}"))}), {dtype} weights");
            ctx.Line($"  parameters: {Format.Count(result.Cost!.Parameters)}   MACs @{result.Cost.InputSize}: {Format.Count(result.Cost.Macs)}");
            foreach (var st in result.Stages!) ctx.Line($"    {st.Stage,-7} parameters {Format.Count(st.Parameters),8}   MACs {Format.Count(st.Macs),8}");
        }
        else
        {
            StateDict read = sd!;
            using var ckpt = CheckpointLoading.FromStateDict(ctx, read, allowNonFinite: allowNonFinite);
            // Built as convert builds it, so a tensor missing from the checkpoint (or one the layout leaves out) is refused here too.
            _ = RMNet.Lowering.SourceGraphs.Lower(ckpt);
            var (form, blocks) = ckpt switch
            {
                ResNetCheckpoint r => ("residual", r.Spec.Blocks().Select(b => new BlockJson(b.Prefix, b.InChannels, b.Width, b.OutChannels, b.Stride, b.Groups,
                    b.HasProjection ? "projection" : "identity")).ToList()),
                RepVggCheckpoint v => (v.Spec.Blocks.All(b => b.Deploy) ? "plain" : "multi-branch", v.Spec.Blocks.Select(b => new BlockJson(b.Prefix, b.InChannels,
                    b.OutChannels, b.OutChannels, b.Stride, b.Groups, b.Deploy ? "none (deploy form)" : b.HasIdentity ? "3x3 + 1x1 + identity" : "3x3 + 1x1")).ToList()),
                PreActCheckpoint a => ("residual (pre-activation)", a.Spec.Blocks.Select(b => new BlockJson(b.Prefix, b.InChannels, b.Width, b.OutChannels,
                    b.Stride, 1, b.HasProjection ? "projection" : "identity")).ToList()),
                MobileNetV2Checkpoint m => ("residual (inverted)", m.Spec.Blocks.Select(b => new BlockJson($"features.{b.Index}", b.InChannels, b.Hidden,
                    b.OutChannels, b.Stride, b.Hidden, b.Residual ? "identity" : "none")).ToList()),
                IResNetCheckpoint ir => ("residual (no activation after the sum)", ir.Spec.Blocks.Select(b => new BlockJson(b.Prefix, b.InChannels, b.Planes,
                    b.Planes, b.Stride, 1, b.HasProjection ? "projection" : "identity")).ToList()),
                _ => throw new NotSupportedException(ckpt.Family),
            };
            result = new Result(path, format == FileFormat.Safetensors ? "safetensors" : "pytorch", form, ckpt.DisplayName, ckpt.NumClasses, blocks,
                CostReport.Of(ckpt, size, FileFormats.ModelBytes(path)), null, null, null, null, Stages: ckpt.CostByStage(size, size), Family: ckpt.Family)
            {
                WeightsDtype = dtype, WeightsKey = read.WeightsKey, OtherWeightsKeys = read.OtherWeightsKeys is { Count: > 0 } others ? others : null, RemovedPrefix = read.RemovedPrefix,
            };
            ctx.Document(result);
            ctx.Line($"{path}: {(Squashed(ckpt.Description).Contains(Squashed(ckpt.Family)) ? "" : ckpt.Family + " ")}{ckpt.Description}, {form}, {dtype} weights");
            if (CheckpointLoading.Note(read) is { } note) ctx.Line($"  {note[(path.Length + 2)..]}");
            ctx.Line($"  parameters: {Format.Count(result.Cost!.Parameters)}   MACs @{result.Cost.InputSize}: {Format.Count(result.Cost.Macs)}");
            foreach (var st in result.Stages!) ctx.Line($"    {st.Stage,-7} parameters {Format.Count(st.Parameters),8}   MACs {Format.Count(st.Macs),8}");
            var rows = new List<string[]> { new[] { "block", "in", "width", "out", "stride", "groups", ckpt.Family == "resnet" ? "shortcut" : "branches" } };
            rows.AddRange(blocks.Select(b => new[] { b.Name, b.InChannels.ToString(), b.Width.ToString(), b.OutChannels.ToString(), b.Stride.ToString(), b.Groups.ToString(), b.Shortcut }));
            foreach (var line in Format.Table(rows)) ctx.Line("  " + line);
        }
        return ExitCodes.Success;
    }

    /// <summary>Lower case without '-' and '_': "mobilenet_v2" is named in "MobileNetV2 ...", so inspect does not repeat it.</summary>
    static string Squashed(string s) => s.ToLowerInvariant().Replace("-", "").Replace("_", "");
}
