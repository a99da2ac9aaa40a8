namespace RMNet.Onnx;

/// <summary>What became of one join of the input graph (see <see cref="ResidualJoins"/>).</summary>
/// <param name="Name">The join node.</param>
/// <param name="Op">Add, Sum or Mul.</param>
/// <param name="Kind"><c>residual</c> or <c>gate</c>.</param>
/// <param name="Status"><c>plain</c> (the residual join is gone), <c>kept</c> (it remains in the output) or <c>gate</c> (stays by design).</param>
/// <param name="Reason">Why a residual join was kept, or null.</param>
internal sealed record JoinReport(string Name, string Op, string Kind, string Status, string? Reason)
{
    /// <summary>True for a residual join that remains in the output: what <c>--strict</c> refuses.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Remains => Kind == "residual" && Status == "kept";

    /// <summary>
    /// Accounts for every join: each residual join of <paramref name="before"/> is plain when the output
    /// (<paramref name="after"/>) no longer has it and kept otherwise, with the block pass's reason where a pass
    /// recognised the block; residual joins that appear only in the output are listed too, so none goes
    /// unreported (gates a pass rebuilds, such as an SE block's, are the input's gates under new names).
    /// </summary>
    public static IReadOnlyList<JoinReport> Account(IReadOnlyList<GraphJoin> before, IReadOnlyList<GraphJoin> after, IReadOnlyList<GraphBlockReport> blocks)
    {
        var remaining = after.Select(j => j.Name).ToHashSet();
        var reasons = blocks.Where(b => b.Reason is not null).GroupBy(b => b.Name).ToDictionary(b => b.Key, b => b.First().Reason!);
        var reports = new List<JoinReport>();
        foreach (var j in before)
        {
            if (j.Kind == "gate") reports.Add(new JoinReport(j.Name, j.Op, j.Kind, "gate", null));
            else if (!remaining.Contains(j.Name)) reports.Add(new JoinReport(j.Name, j.Op, j.Kind, "plain", null));
            else reports.Add(new JoinReport(j.Name, j.Op, j.Kind, "kept",
                reasons.GetValueOrDefault(j.Name) ?? $"not a residual block the RM passes recognise (operands {string.Join(", ", j.Operands.Select(o => $"'{o}'"))})"));
        }
        var known = before.Select(j => j.Name).ToHashSet();
        foreach (var j in after.Where(j => j.Kind == "residual" && !known.Contains(j.Name)))
            reports.Add(new JoinReport(j.Name, j.Op, j.Kind, "kept", "introduced by the conversion"));
        return reports;
    }
}
