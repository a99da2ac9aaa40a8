using RMNet.IO;
using RMNet.Models;

namespace RMNet.Cli.Commands;

/// <summary>Loads a checkpoint for a command, saying on stderr which of its keys the weights came from.</summary>
internal static class CheckpointLoading
{
    /// <summary>
    /// <see cref="SourceModels.Load"/>, abandoned on a stop; logs where the weights were found when the checkpoint had a
    /// choice (a wrapper key, other keys holding weights such as EMA copies, a removed prefix). <paramref name="read"/> is
    /// told the state dict read.
    /// </summary>
    public static ISourceModel Load(CliContext ctx, string path, string? weightsKey, string arch = "auto", int? numClasses = null,
        bool allowNonFinite = false, RMNet.Rm.NegativeInputMode negative = RMNet.Rm.NegativeInputMode.PRelu, Action<StateDict>? read = null)
    {
        string? note = null;
        var model = StopRequest.Abandonable(() => SourceModels.Load(path, arch, numClasses, allowNonFinite, negative, weightsKey, sd =>
        {
            note = Note(sd);
            read?.Invoke(sd);
        }), ctx.Cancellation);
        if (note is not null) ctx.Progress.Stage(note);
        return model;
    }

    /// <summary>The state dict alone (no family recognised yet), abandoned on a stop, with the same note as <see cref="Load"/>.</summary>
    public static StateDict Read(CliContext ctx, string path, string? weightsKey)
    {
        var sd = StopRequest.Abandonable(() => CheckpointReader.Read(path, weightsKey), ctx.Cancellation);
        if (Note(sd) is { } note) ctx.Progress.Stage(note);
        return sd;
    }

    /// <summary>The family <paramref name="sd"/>'s names say (<see cref="SourceModels.FromStateDict"/>), which then owns it.</summary>
    public static ISourceModel FromStateDict(CliContext ctx, StateDict sd, string arch = "auto", int? numClasses = null,
        bool allowNonFinite = false, RMNet.Rm.NegativeInputMode negative = RMNet.Rm.NegativeInputMode.PRelu) =>
        StopRequest.Abandonable(() => SourceModels.FromStateDict(sd, arch, numClasses, allowNonFinite, negative), ctx.Cancellation);

    /// <summary>
    /// The lowering of <paramref name="sd"/>'s family, where its names are one (<see cref="RMNet.Lowering.CheckpointLowerings.Find"/>);
    /// says on stderr when a whole module's saved BatchNorm epsilons win over <paramref name="bnEps"/>, which is then not used.
    /// </summary>
    public static RMNet.Lowering.LoweredCheckpoint? Lowered(CliContext ctx, StateDict sd, double? bnEps, bool allowNonFinite = false)
    {
        var lowered = RMNet.Lowering.CheckpointLowerings.Find(sd, bnEps, allowNonFinite);
        if (lowered is not null && bnEps is double eps && sd.SavedBatchNormEps.Count > 0)
            ctx.Progress.Stage($"{sd.Source}: BatchNorm eps as the whole module saved them ({string.Join(", ", sd.SavedBatchNormEps.Values.Distinct().Select(Format.Sci))}), " +
                $"not --bn-eps {Format.Sci(eps)}");
        return lowered;
    }

    /// <summary>E.g. "weights read from 'state_dict' (also in the file: 'state_dict_ema'; --weights-key picks another)"; null where there was no choice.</summary>
    public static string? Note(StateDict sd)
    {
        if (sd.WeightsKey is null && sd.RemovedPrefix is null && sd.OtherWeightsKeys.Count == 0) return null;
        var parts = new List<string>();
        if (sd.RemovedPrefix is not null) parts.Add($"prefix '{sd.RemovedPrefix}' removed");
        if (sd.OtherWeightsKeys.Count > 0)
            parts.Add($"also in the file: {string.Join(", ", sd.OtherWeightsKeys.Select(k => $"'{k}'"))}; --weights-key picks another");
        return $"{sd.Source}: weights read from {(sd.WeightsKey is null ? "the top level" : $"'{sd.WeightsKey}'")}"
            + (parts.Count > 0 ? $" ({string.Join("; ", parts)})" : "");
    }
}
