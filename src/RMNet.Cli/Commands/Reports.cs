using RMNet.Models;
using RMNet.Plain;
using RMNet.Verification;

namespace RMNet.Cli.Commands;

/// <summary>Cost of one network, as reported by convert, inspect and demo.</summary>
public sealed record CostReport(long Parameters, long Macs, long Flops, int InputSize, long? FileBytes = null)
{
    public static CostReport Of(ResNetSpec spec, int size, long? fileBytes = null)
    {
        long macs = ResNetCost.MultiplyAccumulates(spec, size, size);
        return new(ResNetCost.Parameters(spec), macs, 2 * macs, size, fileBytes);
    }

    public static CostReport Of(PlainModel model, int size, long? fileBytes = null)
    {
        long macs = model.MultiplyAccumulates(size, size);
        return new(model.ParameterCount, macs, 2 * macs, size, fileBytes);
    }
}

/// <summary>The verification part of a JSON document.</summary>
public sealed record VerificationJson(int Samples, double MaxAbsError, double MaxRelError, double Top1Agreement, double Tolerance, bool Passed)
{
    public static VerificationJson Of(VerificationReport r) => new(r.Samples, r.MaxAbsError, r.MaxRelError, r.Top1Agreement, r.Tolerance, r.Passed);
}

/// <summary>Text lines shared by the commands.</summary>
public static class ReportText
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

    public static string Verification(VerificationReport r) =>
        $"verification: {r.Samples} images, max abs error {Format.Sci(r.MaxAbsError)}, max rel error {Format.Sci(r.MaxRelError)}, " +
        $"top-1 agreement {r.Top1Agreement:P0} (tolerance {Format.Sci(r.Tolerance)}): {(r.Passed ? "EQUIVALENT" : "NOT EQUIVALENT")}";

    public static string Describe(ResNetSpec spec) =>
        $"{spec.DisplayName} ({spec.Block} blocks {string.Join("-", spec.Layers)}, {spec.NumClasses} classes)";
}
