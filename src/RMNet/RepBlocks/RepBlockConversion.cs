using RMNet.IO;
using static TorchSharp.torch;

namespace RMNet.RepBlocks;

/// <summary>
/// The partial conversion of a detector: its re-parameterisable blocks (<see cref="RepBlockFinder"/>) rewritten into
/// their deploy form (<c>rbr_reparam.weight</c>, <c>rbr_reparam.bias</c>, where the block's branch tensors were), every
/// other tensor the same object, under the same name (a wrapper prefix the reader removed put back), in the same
/// order. rmnet cannot rebuild a detector; the file is a state dict that the project's own model, built in deploy
/// form, loads.
/// </summary>
internal static class RepBlockConversion
{
    /// <summary>Why a detector's output cannot be ONNX.</summary>
    internal const string OnnxRefusal = "a detector's blocks are written as a state dict: .pth or .safetensors (rmnet cannot build the detector's graph for .onnx)";

    /// <summary>The BatchNorm epsilon both projects train with (their <c>initialize_weights</c> sets every BN's to 1e-3).</summary>
    public const double DefaultBnEps = 1e-3;

    /// <summary>The tensors to write, and how many blocks were fused, already in deploy form, and tensors kept as they are.</summary>
    public sealed record Result(List<(string Name, Tensor Tensor)> Tensors, int Fused, int AlreadyDeploy, int Kept);

    /// <summary>
    /// The epsilon of each BN module: as a whole module saved it, else <paramref name="bnEps"/>, else <see cref="DefaultBnEps"/>.
    /// </summary>
    public static Func<string, double> Eps(StateDict sd, double? bnEps) =>
        bn => sd.SavedBatchNormEps.TryGetValue(bn, out double saved) ? saved : bnEps ?? DefaultBnEps;

    /// <summary>
    /// <paramref name="sd"/> with each training-form block of <paramref name="blocks"/> fused; the fused kernel and bias
    /// take the dtype of the block's 3x3 conv weight (a half-precision checkpoint stays half precision).
    /// </summary>
    public static Result Convert(StateDict sd, IReadOnlyList<RepBlock> blocks, double? bnEps, CancellationToken cancellationToken = default)
    {
        var eps = Eps(sd, bnEps);
        string prefix = sd.RemovedPrefix ?? "";
        var training = blocks.Where(b => !b.Deploy).ToList();
        // The deploy conv goes after the block's last tensor, where the project's switch to deploy adds it (a QARepVGG
        // block's BN after the sum comes before it).
        var lastKey = training.ToDictionary(b => sd.Keys.Last(k => k.StartsWith(b.Prefix + ".", StringComparison.Ordinal)), b => b);
        var tensors = new List<(string, Tensor)>();
        int kept = 0;
        foreach (var (key, tensor) in sd)
        {
            if (!training.Any(b => b.OwnsBranchTensor(key)))
            {
                tensors.Add((prefix + key, tensor));
                kept++;
            }
            if (!lastKey.TryGetValue(key, out var block)) continue;
            cancellationToken.ThrowIfCancellationRequested();
            var dtype = sd[block.DenseConv + ".weight"].dtype;
            var fused = RepBlockFusion.Fuse(sd, block, eps);
            tensors.Add((prefix + block.Reparam + ".weight", fused.Weight.to_type(dtype)));
            tensors.Add((prefix + block.Reparam + ".bias", fused.BiasOrZeros().to_type(dtype)));
        }
        return new Result(tensors, training.Count, blocks.Count - training.Count, kept);
    }

    /// <summary>Writes <paramref name="tensors"/> to <paramref name="path"/> as a <c>.pth</c> state dict or <c>.safetensors</c>.</summary>
    public static void Save(string path, string output, IReadOnlyList<(string Name, Tensor Tensor)> tensors, string description, CancellationToken cancellationToken)
    {
        switch (FileFormats.FromExtension(path))
        {
            case FileFormat.TorchZip:
                StateDictFile.Save(path, tensors, null, cancellationToken);
                break;
            case FileFormat.Safetensors:
                AtomicFile.Write(path, s => SafetensorsFile.Write(s, tensors, new Dictionary<string, string> { ["format"] = "pt", ["rmnet"] = description }, cancellationToken),
                    cancellationToken: cancellationToken);
                break;
            default:
                throw new ModelInputException(output, OnnxRefusal);
        }
    }
}
