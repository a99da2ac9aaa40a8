using RMNet.Verification;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.RepBlocks;

/// <summary>One block's check: its branches against the deploy form's conv on the same random input.</summary>
internal sealed record RepBlockCheck(string Block, double MaxAbsError, double MaxRelError, bool Passed);

/// <summary>
/// What verifying a partial conversion found: each block's errors, and the tensors outside the blocks that are not
/// identical (name, dtype, shape and bytes) to the original's, or missing, or added.
/// </summary>
internal sealed record RepBlockReport(IReadOnlyList<RepBlockCheck> Blocks, int KeptTensors, IReadOnlyList<string> Differing, double Tolerance)
{
    /// <summary>Tensors outside the blocks that the converted file holds with the same values in a wider type (half to float32).</summary>
    public int WidenedTensors { get; init; }

    /// <summary>Convs outside the blocks whose BN the converted file folded in (checked numerically), as the projects' fuse steps do.</summary>
    public int FoldedConvBns { get; init; }

    /// <summary>The seeded inputs each block ran on, and their height and width.</summary>
    public (int Samples, int Size) Inputs { get; init; } = (RepBlockVerification.DefaultSamples, RepBlockVerification.DefaultSize);

    /// <summary>True where every block is within the tolerance and every other tensor is the original's.</summary>
    public bool Passed => Blocks.All(b => b.Passed) && Differing.Count == 0;

    /// <summary>The block with the largest relative error, or null where there is none.</summary>
    public RepBlockCheck? Worst => Blocks.MaxBy(b => b.MaxRelError);
}

/// <summary>
/// Checks a detector's deploy-form state dict against the original, block by block (the network itself is not rebuilt):
/// each training-form block's branches (conv, BN in inference form, summed) and the converted file's
/// <c>rbr_reparam</c> conv run in float32 on seeded random inputs (2 images of 9x9; stride 1, which the weights do not
/// depend on); every other tensor must be byte-identical.
/// </summary>
internal static class RepBlockVerification
{
    /// <summary>Seeded inputs per block unless told otherwise: the weights do not depend on the size, so a small one checks them.</summary>
    public const int DefaultSamples = 2, DefaultSize = 9;

    /// <summary>Compares <paramref name="converted"/> with <paramref name="original"/> (whose blocks are <paramref name="blocks"/>).</summary>
    public static RepBlockReport Verify(StateDict original, IReadOnlyList<RepBlock> blocks, StateDict converted, double? bnEps, double tolerance,
        long seed = 0, CancellationToken cancellationToken = default, int samples = DefaultSamples, int size = DefaultSize)
    {
        var eps = RepBlockConversion.Eps(original, bnEps);
        var convertedByName = converted.ToDictionary(kv => (converted.RemovedPrefix ?? "") + kv.Key, kv => kv.Value);
        string prefix = original.RemovedPrefix ?? "";
        var differing = new List<string>();
        var checks = new List<RepBlockCheck>();
        var expectedNames = new HashSet<string>();
        int kept = 0, widened = 0;
        var folds = FoldedConvBns(original, blocks, convertedByName, prefix);
        foreach (var fold in folds)
        {
            expectedNames.Add($"{prefix}{fold}.conv.weight");
            expectedNames.Add($"{prefix}{fold}.conv.bias");
            if (FoldError(original, fold, convertedByName, prefix, eps) is var error && !(error <= tolerance))
                differing.Add($"'{prefix}{fold}.conv' is not its conv with the BN folded in (rel error {error.ToString("0.00E+00", System.Globalization.CultureInfo.InvariantCulture)})");
        }
        foreach (var (key, tensor) in original)
        {
            if (blocks.Any(b => b.OwnsBranchTensor(key)) || folds.Any(f => key.StartsWith(f + ".conv.", StringComparison.Ordinal) || key.StartsWith(f + ".bn.", StringComparison.Ordinal)))
                continue;
            expectedNames.Add(prefix + key);
            kept++;
            if (!convertedByName.TryGetValue(prefix + key, out var other)) differing.Add($"'{prefix + key}' missing");
            else if (!Identical(tensor, other))
            {
                // A deploy file made from a half-precision checkpoint in float32 (YOLOv6's loader calls .float()) holds the
                // same values in a wider type: the same tensor, counted apart; any other change is a difference.
                if (Widened(tensor, other)) widened++;
                else differing.Add($"'{prefix + key}' differs{(tensor.dtype != other.dtype ? $" ({tensor.dtype} -> {other.dtype})" : "")}");
            }
        }
        foreach (var block in blocks.Where(b => !b.Deploy))
        {
            cancellationToken.ThrowIfCancellationRequested();
            string weight = prefix + block.Reparam + ".weight", bias = prefix + block.Reparam + ".bias";
            expectedNames.Add(weight);
            expectedNames.Add(bias);
            if (!convertedByName.TryGetValue(weight, out var w) || !convertedByName.TryGetValue(bias, out var b))
            {
                differing.Add($"'{weight}' missing");
                continue;
            }
            using var scope = NewDisposeScope();
            var r = Measure(original, block, w, b, eps, tolerance, seed, samples, size);
            checks.Add(new RepBlockCheck(prefix + block.Prefix, r.MaxAbsError, r.MaxRelError, r.Passed));
        }
        differing.AddRange(convertedByName.Keys.Where(k => !expectedNames.Contains(k)).Select(k => $"'{k}' added"));
        return new RepBlockReport(checks, kept, differing, tolerance) { Inputs = (samples, size), FoldedConvBns = folds.Count, WidenedTensors = widened };
    }

    /// <summary>
    /// Modules <c>P</c> outside the blocks whose <c>P.conv</c> + <c>P.bn</c> the converted file holds as one conv with bias
    /// (<c>P.conv.bias</c>, no <c>P.bn</c>): YOLOv6's <c>fuse_model</c> and YOLOv7's <c>fuse</c> do this to every ConvModule / Conv
    /// when they deploy, so a deploy file PyTorch made has them.
    /// </summary>
    static List<string> FoldedConvBns(StateDict original, IReadOnlyList<RepBlock> blocks, IReadOnlyDictionary<string, Tensor> converted, string prefix) =>
        original.Keys.Where(k => k.EndsWith(".bn.running_var", StringComparison.Ordinal)).Select(k => k[..^".bn.running_var".Length])
            .Where(p => original.ContainsKey(p + ".conv.weight") && !blocks.Any(b => b.OwnsBranchTensor(p + ".conv.weight"))
                && converted.ContainsKey($"{prefix}{p}.conv.bias") && converted.ContainsKey($"{prefix}{p}.conv.weight") && !converted.ContainsKey($"{prefix}{p}.bn.running_var"))
            .ToList();

    /// <summary>The larger relative error of the converted conv's weight and bias against the original's conv and BN folded in float64.</summary>
    static double FoldError(StateDict sd, string p, IReadOnlyDictionary<string, Tensor> converted, string prefix, Func<string, double> eps)
    {
        using var scope = NewDisposeScope();
        var w = sd[p + ".conv.weight"];
        var expected = BatchNormFusion.Fuse(new ConvWeights(w, sd.GetValueOrDefault(p + ".conv.bias")), RepBlockFusion.Bn(sd, p + ".bn", w.shape[0], eps));
        var (expectedWeight, expectedBias) = (expected.Weight, expected.BiasOrZeros());
        var actualWeight = converted[$"{prefix}{p}.conv.weight"].to_type(ScalarType.Float64);
        var actualBias = converted[$"{prefix}{p}.conv.bias"].to_type(ScalarType.Float64);
        if (!actualWeight.shape.SequenceEqual(expectedWeight.shape) || !actualBias.shape.SequenceEqual(expectedBias.shape)) return double.PositiveInfinity;
        double Rel(Tensor e, Tensor a) => (a - e).abs().max().item<double>() / Math.Max(e.abs().max().item<double>(), 1e-300);
        return Math.Max(Rel(expectedWeight, actualWeight), Rel(expectedBias, actualBias));
    }

    static VerificationReport Measure(StateDict sd, RepBlock block, Tensor weight, Tensor bias, Func<string, double> eps, double tolerance, long seed, int samples, int size)
    {
        var dense = F32(sd.Require(block.DenseConv + ".weight"));
        long perGroup = dense.shape[1], outChannels = dense.shape[0];
        // As in fusion: the identity fixes the groups; without it any grouping checks the same sum of kernels.
        long groups = RepBlockFusion.Groups(sd, block, dense);
        if (weight.dim() != 4 || weight.shape[0] != outChannels || weight.shape[1] != perGroup || weight.shape[2] != 3 || weight.shape[3] != 3 || bias.numel() != outChannels)
            return new VerificationReport(1, double.PositiveInfinity, double.PositiveInfinity, 0, tolerance);
        var x = Equivalence.SeededInputs(samples, checked((int)(perGroup * groups)), size, size, seed);
        Tensor Bn(Tensor y, string bn) =>
            (y - F32(sd[bn + ".running_mean"]).view(1, -1, 1, 1)) / (F32(sd[bn + ".running_var"]) + eps(bn)).sqrt().view(1, -1, 1, 1)
            * F32(sd[bn + ".weight"]).view(1, -1, 1, 1) + F32(sd[bn + ".bias"]).view(1, -1, 1, 1);
        var oneByOne = nn.functional.conv2d(x, F32(sd[block.OneByOneConv + ".weight"]), groups: groups);
        var branches = Bn(nn.functional.conv2d(x, dense, padding: new long[] { 1, 1 }, groups: groups), block.DenseBn)
            + (block.BareOneByOne ? oneByOne : Bn(oneByOne, block.OneByOneBn));
        if (block.HasIdentity) branches += block.BareOneByOne ? x : Bn(x, block.Identity);
        if (block.HasAverage) branches += nn.functional.avg_pool2d(x, 3, stride: 1, padding: 1, count_include_pad: true);
        var deploy = nn.functional.conv2d(x, F32(weight), F32(bias), padding: new long[] { 1, 1 }, groups: groups);
        return Equivalence.Measure(branches, deploy, tolerance);
    }

    static Tensor F32(Tensor t) => t.to_type(ScalarType.Float32);

    /// <summary>Same dtype, shape and bytes.</summary>
    static bool Identical(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);

    /// <summary>Floating-point <paramref name="b"/> holds exactly <paramref name="a"/>'s values in a wider type (float16 or bfloat16 to float32 or float64).</summary>
    static bool Widened(Tensor a, Tensor b)
    {
        if (!a.is_floating_point() || !b.is_floating_point() || !a.shape.SequenceEqual(b.shape) || a.element_size() >= b.element_size()) return false;
        using var wide = a.to_type(b.dtype);
        using var same = wide.eq(b).all();
        return same.item<bool>();
    }
}
