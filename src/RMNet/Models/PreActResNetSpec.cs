using System.Text.RegularExpressions;

namespace RMNet.Models;

/// <summary>One pre-activation block: BN-ReLU-conv units, the shortcut (identity, or a 1x1 conv with no BN).</summary>
/// <param name="Prefix">State-dict prefix, e.g. <c>layer2.0</c>.</param>
/// <param name="Stage">Stage index 0..3.</param>
/// <param name="InChannels">Input channels.</param>
/// <param name="Width">Inner width.</param>
/// <param name="OutChannels">Output channels.</param>
/// <param name="Stride">Stride (on conv1 in basic blocks, conv2 in bottlenecks, as in the common CIFAR code).</param>
/// <param name="HasProjection">True where <c>shortcut.0</c> exists.</param>
internal sealed record PreActBlockSpec(string Prefix, int Stage, int InChannels, int Width, int OutChannels, int Stride, bool HasProjection);

/// <summary>
/// A pre-activation ResNet with the names common in CIFAR code: stem <c>conv1</c> (no BN), blocks
/// <c>layerN.M.bn1</c>, <c>.conv1</c>, <c>.bn2</c>, <c>.conv2</c> (<c>.bn3</c>, <c>.conv3</c> for bottlenecks),
/// <c>.shortcut.0</c> (1x1 conv, no BN), a final <c>bn</c> and <c>linear</c>. Block:
/// a = relu(bn1(x)); y = conv(... relu(bn2(conv1(a))) ...) + (shortcut(a) or x); no activation after the sum,
/// so block inputs can be negative.
/// </summary>
internal sealed partial record PreActResNetSpec(bool Bottleneck, IReadOnlyList<PreActBlockSpec> Blocks, int StemWidth, int StemKernel, int NumClasses, string? Name)
{
    [GeneratedRegex(@"^layer([1-4])\.(\d+)\.bn1\.weight$")]
    private static partial Regex BlockBn();

    /// <summary>True where the names are those of a pre-activation ResNet (<c>linear</c>, a block <c>bn1</c>, no stem BN): a missing final <c>bn</c> is then named as missing.</summary>
    public static bool Matches(StateDict sd) =>
        sd.ContainsKey("linear.weight") && sd.ContainsKey("layer1.0.bn1.weight") && !sd.ContainsKey("bn1.weight");

    /// <summary>Convs per block.</summary>
    public int ConvsPerBlock => Bottleneck ? 3 : 2;

    /// <summary>Reads the layout from names and shapes.</summary>
    public static PreActResNetSpec Detect(StateDict sd)
    {
        var stem = sd.Require("conv1.weight");
        if (stem.dim() != 4 || stem.shape[1] != 3 || stem.shape[2] != stem.shape[3] || stem.shape[2] % 2 == 0)
            throw new ModelInputException(sd.Source, $"key 'conv1.weight' has shape [{string.Join(", ", stem.shape)}], expected [C, 3, k, k] with odd k");
        bool bottleneck = sd.ContainsKey("layer1.0.conv3.weight");
        var found = sd.Keys.Select(k => BlockBn().Match(k)).Where(m => m.Success)
            .Select(m => (Stage: int.Parse(m.Groups[1].Value) - 1, Index: int.Parse(m.Groups[2].Value)))
            .OrderBy(p => p.Stage).ThenBy(p => p.Index).ToList();
        var blocks = new List<PreActBlockSpec>();
        int inC = (int)stem.shape[0];
        foreach (var (stage, index) in found)
        {
            string p = $"layer{stage + 1}.{index}";
            int width = (int)Dim(sd, $"{p}.conv1.weight", 0);
            int outC = (int)Dim(sd, bottleneck ? $"{p}.conv3.weight" : $"{p}.conv2.weight", 0);
            bool projection = sd.ContainsKey($"{p}.shortcut.0.weight");
            int stride = index == 0 && stage > 0 ? 2 : 1;
            if (!projection && (stride != 1 || inC != outC))
                throw new ModelInputException(sd.Source, $"block '{p}' changes shape ({inC} -> {outC}, stride {stride}) but has no 'shortcut.0.weight'");
            blocks.Add(new PreActBlockSpec(p, stage, inC, width, outC, stride, projection));
            inC = outC;
        }
        if (blocks.Count == 0) throw new ModelInputException(sd.Source, "not a pre-activation ResNet: no 'layer1.0.bn1.weight'");
        var fc = sd.Require("linear.weight");
        if (fc.dim() != 2 || fc.shape[1] != inC)
            throw new ModelInputException(sd.Source, $"key 'linear.weight' has shape [{string.Join(", ", fc.shape)}], expected [classes, {inC}]");
        var counts = Enumerable.Range(0, 4).Select(s => blocks.Count(b => b.Stage == s)).ToArray();
        string? name = (bottleneck, string.Join(",", counts), (int)stem.shape[0]) switch
        {
            (false, "2,2,2,2", 64) => "preact_resnet18",
            (false, "3,4,6,3", 64) => "preact_resnet34",
            (true, "3,4,6,3", 64) => "preact_resnet50",
            _ => null,
        };
        return new PreActResNetSpec(bottleneck, blocks, (int)stem.shape[0], (int)stem.shape[2], (int)fc.shape[0], name);
    }

    /// <summary>A readable name.</summary>
    public string DisplayName => Name ?? $"preact-resnet ({(Bottleneck ? "bottleneck" : "basic")} blocks {string.Join("-", Enumerable.Range(0, 4).Select(s => Blocks.Count(b => b.Stage == s)))}, stem {StemWidth})";

    static long Dim(StateDict sd, string key, int d)
    {
        var t = sd.Require(key);
        return t.dim() > d ? t.shape[d] : throw new ModelInputException(sd.Source, $"key '{key}' has shape [{string.Join(", ", t.shape)}]");
    }
}
