using System.Text.RegularExpressions;

namespace RMNet.Models;

/// <summary>One IBasicBlock: bn1, conv1 (3x3), bn2, prelu, conv2 (3x3, the stride), bn3, optional downsample.</summary>
/// <param name="Prefix">State-dict prefix, e.g. <c>layer2.0</c>.</param>
/// <param name="Stage">Stage 0..3.</param>
/// <param name="InChannels">Input channels.</param>
/// <param name="Planes">Output channels.</param>
/// <param name="Stride">2 for each stage's first block (layer1 included), else 1.</param>
/// <param name="HasProjection">True where <c>downsample.0</c> (1x1 conv) and <c>downsample.1</c> (BN) exist.</param>
internal sealed record IBasicBlockSpec(string Prefix, int Stage, int InChannels, int Planes, int Stride, bool HasProjection);

/// <summary>
/// InsightFace's IResNet (arcface_torch names): stem <c>conv1</c>, <c>bn1</c>, <c>prelu</c>; blocks
/// <c>layerN.M.bn1</c>, <c>.conv1</c>, <c>.bn2</c>, <c>.prelu</c>, <c>.conv2</c>, <c>.bn3</c>, <c>.downsample.0/1</c>;
/// head <c>bn2</c>, flatten, <c>fc</c>, <c>features</c> (BatchNorm1d). No activation after the addition, so
/// block inputs can be negative.
/// </summary>
internal sealed partial record IResNetSpec(int StemWidth, IReadOnlyList<IBasicBlockSpec> Blocks, int Spatial, int NumFeatures, string? Name)
{
    [GeneratedRegex(@"^layer([1-4])\.(\d+)\.conv1\.weight$")]
    private static partial Regex BlockConv();

    static readonly Dictionary<string, string> Names = new()
    {
        ["2,2,2,2"] = "iresnet18", ["3,4,6,3"] = "iresnet34", ["3,4,14,3"] = "iresnet50",
        ["3,13,30,3"] = "iresnet100", ["6,26,60,6"] = "iresnet200", ["3,128,1024,3"] = "iresnet2060",
    };

    /// <summary>
    /// True where the names are IResNet's (stem and block PReLU, <c>fc</c>): recognised by those, so that a missing head tensor
    /// (the BatchNorm1d <c>features</c>) is then named as missing rather than making the checkpoint another family's.
    /// </summary>
    public static bool Matches(StateDict sd) =>
        sd.ContainsKey("prelu.weight") && sd.ContainsKey("layer1.0.prelu.weight") && sd.ContainsKey("fc.weight");

    /// <summary>Reads the layout from names and shapes.</summary>
    public static IResNetSpec Detect(StateDict sd)
    {
        int stem = (int)sd.Require("conv1.weight").shape[0];
        var found = sd.Keys.Select(k => BlockConv().Match(k)).Where(m => m.Success)
            .Select(m => (Stage: int.Parse(m.Groups[1].Value) - 1, Index: int.Parse(m.Groups[2].Value)))
            .OrderBy(p => p.Stage).ThenBy(p => p.Index).ToList();
        var blocks = new List<IBasicBlockSpec>();
        int inC = stem;
        foreach (var (stage, index) in found)
        {
            string p = $"layer{stage + 1}.{index}";
            int planes = (int)sd.Require($"{p}.conv1.weight").shape[0];
            bool projection = sd.ContainsKey($"{p}.downsample.0.weight");
            int stride = index == 0 ? 2 : 1;
            if (!projection && (stride != 1 || inC != planes))
                throw new ModelInputException(sd.Source, $"block '{p}' changes shape ({inC} -> {planes}, stride {stride}) but has no 'downsample.0.weight'");
            blocks.Add(new IBasicBlockSpec(p, stage, inC, planes, stride, projection));
            inC = planes;
        }
        if (blocks.Count == 0) throw new ModelInputException(sd.Source, "not an IResNet: no 'layer1.0.conv1.weight'");
        var fc = sd.Require("fc.weight");
        long spatial = fc.dim() == 2 && fc.shape[1] % inC == 0 ? fc.shape[1] / inC : 0;
        int side = (int)Math.Round(Math.Sqrt(spatial));
        if (side * side != spatial || side == 0)
            throw new ModelInputException(sd.Source, $"key 'fc.weight' has shape [{string.Join(", ", fc.shape)}]: not {inC} x a square feature map");
        string counts = string.Join(",", Enumerable.Range(0, 4).Select(s => blocks.Count(b => b.Stage == s)));
        string? name = Names.TryGetValue(counts, out var n) ? (stem == 64 ? n : $"{n} (stem {stem})") : null;
        return new IResNetSpec(stem, blocks, side, (int)fc.shape[0], name);
    }

    /// <summary>Input size the flatten and fc expect (the feature map is Spatial x Spatial after four stride-2 stages).</summary>
    public int InputSize => Spatial * 16;

    /// <summary>A readable name.</summary>
    public string DisplayName => Name ?? $"iresnet ({Blocks.Count} blocks, stem {StemWidth})";
}
