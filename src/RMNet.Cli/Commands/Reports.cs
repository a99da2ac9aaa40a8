using RMNet.Models;
using RMNet.Plain;
using RMNet.Verification;

namespace RMNet.Cli.Commands;

/// <summary>Cost of one network, as reported by convert, inspect and demo, at <see cref="InputSize"/>: the size asked for, or the one the network takes where its head fixes it (IResNet: 112).</summary>
internal sealed record CostReport(long Parameters, long Macs, long Flops, int InputSize, long? FileBytes = null)
{
    public static CostReport Of(ISourceModel model, int size, long? fileBytes = null)
    {
        size = model.FixedInputSize ?? size;
        var stages = model.CostByStage(size, size);
        long macs = stages.Sum(s => s.Macs);
        return new(stages.Sum(s => s.Parameters), macs, 2 * macs, size, fileBytes);
    }

    public static CostReport Of(RMNet.Onnx.OnnxSummary model, long? fileBytes = null) =>
        new(model.Parameters, model.Macs, 2 * model.Macs, model.InputSize, fileBytes);

    public static CostReport Of(PlainModel model, int size, long? fileBytes = null)
    {
        size = model.FixedInputSize ?? size;
        long macs = model.MultiplyAccumulates(size, size);
        return new(model.ParameterCount, macs, 2 * macs, size, fileBytes);
    }
}

/// <summary>One stage of a cost comparison.</summary>
internal sealed record StageRow(string Stage, long OriginalParameters, long ConvertedParameters, long OriginalMacs, long ConvertedMacs)
{
    public static IReadOnlyList<StageRow> Compare(IReadOnlyList<StageCost> original, IReadOnlyList<StageCost> converted)
    {
        var rows = original.Select(o => converted.FirstOrDefault(c => c.Stage == o.Stage) is { } c
            ? new StageRow(o.Stage, o.Parameters, c.Parameters, o.Macs, c.Macs) : null).OfType<StageRow>().ToList();
        rows.Add(new StageRow("total", original.Sum(o => o.Parameters), converted.Sum(c => c.Parameters), original.Sum(o => o.Macs), converted.Sum(c => c.Macs)));
        return rows;
    }
}

/// <summary>The verification part of a JSON document; <see cref="UserInput"/>: the same for the user's images alone.</summary>
internal sealed record VerificationJson(int Samples, double? MaxAbsError, double? MaxRelError, double Top1Agreement, double Tolerance, bool Passed,
    IReadOnlyList<long>? InputShape = null, string? NonFinite = null, VerificationJson? UserInput = null)
{
    /// <summary>Where the outputs' shapes differ: both, e.g. "original [2, 10], converted [2, 1000]" (the errors are then null: JSON has no infinity).</summary>
    public string? OutputMismatch { get; init; }

    public static VerificationJson Of(VerificationReport r) => new(r.Samples, Finite(r.MaxAbsError), Finite(r.MaxRelError), r.Top1Agreement, r.Tolerance, r.Passed,
        r.InputShape, r.NonFinite?.Describe(r.Samples), r.UserInput is { } user ? Of(user) : null) { OutputMismatch = r.OutputMismatch };

    static double? Finite(double x) => double.IsFinite(x) ? x : null;
}

/// <summary>Text lines shared by the commands.</summary>
internal static class ReportText
{
    public static IEnumerable<string> CostTable(CostReport original, CostReport converted)
    {
        var rows = new List<string[]>
        {
            new[] { "", "original", "plain", "ratio" },
            new[] { "parameters", Format.Count(original.Parameters), Format.Count(converted.Parameters), Format.Ratio(converted.Parameters / (double)original.Parameters) },
            new[] { $"MACs @{original.InputSize}", Format.Count(original.Macs), Format.Count(converted.Macs), Format.Ratio(converted.Macs / (double)original.Macs) },
        };
        if (converted.FileBytes is long bytes)
            rows.Add(new[] { "file size", original.FileBytes is long o ? Format.Bytes(o) : "-", Format.Bytes(bytes), original.FileBytes is long o2 ? Format.Ratio(bytes / (double)o2) : "" });
        return Format.Table(rows).Select(l => "  " + l);
    }

    public static IEnumerable<string> StageTable(IReadOnlyList<StageRow> rows, int size)
    {
        var table = new List<string[]> { new[] { "stage", "params", "plain params", "ratio", $"MACs @{size}", "plain MACs", "ratio" } };
        table.AddRange(rows.Select(r => new[]
        {
            r.Stage, Format.Count(r.OriginalParameters), Format.Count(r.ConvertedParameters), Format.Ratio(r.ConvertedParameters / (double)Math.Max(1, r.OriginalParameters)),
            Format.Count(r.OriginalMacs), Format.Count(r.ConvertedMacs), Format.Ratio(r.ConvertedMacs / (double)Math.Max(1, r.OriginalMacs)),
        }));
        return Format.Table(table).Select(l => "  " + l);
    }

    /// <summary>
    /// What a verification ran on: the seeded images' shape (saying where the model fixed batch or size against the
    /// options) and the user's images.
    /// </summary>
    public static string Inputs(VerificationReport r, int samples, int inputSize, string? userInput)
    {
        int seeded = r.SeededSamples ?? r.Samples;
        if (seeded == 0 && userInput is not null) return $"inputs: {r.Samples} images from {userInput} (no seeded images: --samples 0)";
        if (r.InputShape is not { Length: 4 } shape) return $"inputs: {r.Samples} images";
        var notes = new List<string>();
        if (shape[0] != samples) notes.Add($"batch {shape[0]} fixed by the model, so {seeded / shape[0]} runs for --samples {samples}");
        if (shape[2] != inputSize || shape[3] != inputSize) notes.Add($"{shape[2]}x{shape[3]} fixed by the model, not --input-size {inputSize}");
        return $"inputs: {seeded} seeded images [{shape[1]}, {shape[2]}, {shape[3]}]"
            + (userInput is null ? "" : $" plus {r.Samples - seeded} from {userInput}")
            + (notes.Count > 0 ? $" ({string.Join("; ", notes)})" : "");
    }

    public static string Verification(VerificationReport r) =>
        $"verification: {Errors(r)} (tolerance {Format.Sci(r.Tolerance)}){(r.NonFinite is { } n ? $", {n.Describe(r.Samples)}" : "")}: {(r.Passed ? "EQUIVALENT" : "NOT EQUIVALENT")}";

    static string Errors(VerificationReport r) => r.OutputMismatch is { } shapes
        ? $"{r.Samples} images, outputs of different shapes ({shapes}): not the same network"
        : $"{r.Samples} images, max abs error {Format.Sci(r.MaxAbsError)}, max rel error {Format.Sci(r.MaxRelError)}, top-1 agreement {r.Top1Agreement:P0}";

    /// <summary>The user's images' own errors, where they were run beside seeded ones; else null.</summary>
    public static string? UserImages(VerificationReport r, string? userInput) =>
        r.UserInput is { } u && r.SeededSamples > 0
            ? $"  of which {userInput}: {Errors(u)}{(u.NonFinite is { } n ? $", {n.Describe(u.Samples)}" : "")}"
            : null;

    /// <summary>What convert says where the written <paramref name="output"/> failed its verification (then deleted).</summary>
    public static string NotKept(string output, VerificationReport r) => $"{output}: converted model differs from the original ({Failure(r)}); nothing written";

    /// <summary>Why a failed verification failed: the non-finite outputs, or the error against the tolerance.</summary>
    public static string Failure(VerificationReport r) =>
        r.OutputMismatch is { } shapes ? $"outputs of different shapes: {shapes}"
        : r.NonFinite is { } n ? n.Describe(r.Samples) : $"max rel error {Format.Sci(r.MaxRelError)} > {Format.Sci(r.Tolerance)}";
}
