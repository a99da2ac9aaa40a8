using System.Text.RegularExpressions;

namespace RMNet.Models;

/// <summary>One RepVGG block: name prefix, channels, stride, groups and which branches it has.</summary>
/// <param name="Prefix">State-dict prefix, e.g. <c>stage2.0</c> (or <c>stage0</c>).</param>
/// <param name="Stage">Stage index 0..4.</param>
/// <param name="InChannels">Input channels.</param>
/// <param name="OutChannels">Output channels.</param>
/// <param name="Stride">Stride (2 for each stage's first block).</param>
/// <param name="Groups">Groups of the 3x3 and 1x1 convs.</param>
/// <param name="HasIdentity">True where an identity BN branch exists.</param>
/// <param name="Deploy">True where the block is already re-parameterised (<c>rbr_reparam</c>).</param>
internal sealed record RepVggBlockSpec(string Prefix, int Stage, int InChannels, int OutChannels, int Stride, int Groups, bool HasIdentity, bool Deploy);

/// <summary>
/// A RepVGG network with the official parameter names: <c>stage0</c> (one block), <c>stage1</c>..<c>stage4</c>
/// (sequences of blocks with <c>rbr_dense</c>, <c>rbr_1x1</c>, <c>rbr_identity</c>, or <c>rbr_reparam</c> in deploy
/// form), global average pooling and <c>linear</c>. Read from the shapes of a state dict; named where the shapes
/// match an official variant.
/// </summary>
internal sealed partial record RepVggSpec(IReadOnlyList<RepVggBlockSpec> Blocks, int NumClasses, string? Name)
{
    /// <summary>The official variants: blocks per stage 1..4, width multipliers a (stages 1-3) and b (stage 4), grouped layers.</summary>
    public static IReadOnlyDictionary<string, (int[] Blocks, double A, double B, int Groups)> Variants { get; } =
        new Dictionary<string, (int[], double, double, int)>
        {
            ["RepVGG-A0"] = (new[] { 2, 4, 14, 1 }, 0.75, 2.5, 1),
            ["RepVGG-A1"] = (new[] { 2, 4, 14, 1 }, 1, 2.5, 1),
            ["RepVGG-A2"] = (new[] { 2, 4, 14, 1 }, 1.5, 2.75, 1),
            ["RepVGG-B0"] = (new[] { 4, 6, 16, 1 }, 1, 2.5, 1),
            ["RepVGG-B1"] = (new[] { 4, 6, 16, 1 }, 2, 4, 1),
            ["RepVGG-B1g2"] = (new[] { 4, 6, 16, 1 }, 2, 4, 2),
            ["RepVGG-B1g4"] = (new[] { 4, 6, 16, 1 }, 2, 4, 4),
            ["RepVGG-B2"] = (new[] { 4, 6, 16, 1 }, 2.5, 5, 1),
            ["RepVGG-B2g4"] = (new[] { 4, 6, 16, 1 }, 2.5, 5, 4),
            ["RepVGG-B3"] = (new[] { 4, 6, 16, 1 }, 3, 5, 1),
        };

    [GeneratedRegex(@"^(stage[0-4])(?:\.(\d+))?\.(rbr_dense\.conv|rbr_reparam)\.weight$")]
    private static partial Regex BlockWeight();

    /// <summary>True where the state dict uses RepVGG's names.</summary>
    public static bool Matches(StateDict sd) => sd.ContainsKey("stage0.rbr_dense.conv.weight") || sd.ContainsKey("stage0.rbr_reparam.weight");

    /// <summary>Reads the layout from names and shapes; throws <see cref="ModelInputException"/> naming what does not fit.</summary>
    public static RepVggSpec Detect(StateDict sd)
    {
        // Checkpoint key order is not reliable (pickled dicts load unordered): order blocks by stage and index.
        var found = sd.Keys.Select(k => (Key: k, Match: BlockWeight().Match(k))).Where(m => m.Match.Success)
            .Select(m => (m.Key, m.Match, Stage: m.Match.Groups[1].Value[^1] - '0', Index: m.Match.Groups[2].Success ? int.Parse(m.Match.Groups[2].Value) : 0))
            .OrderBy(m => m.Stage).ThenBy(m => m.Index).ToList();
        var blocks = new List<RepVggBlockSpec>();
        foreach (var (key, m, stage, index) in found)
        {
            string prefix = m.Groups[2].Success ? $"{m.Groups[1].Value}.{m.Groups[2].Value}" : m.Groups[1].Value;
            var w = sd[key];
            if (w.dim() != 4 || w.shape[2] != 3 || w.shape[3] != 3)
                throw new ModelInputException(sd.Source, $"key '{key}' has shape [{string.Join(", ", w.shape)}], expected a 3x3 kernel");
            bool deploy = m.Groups[3].Value == "rbr_reparam";
            int outC = (int)w.shape[0];
            int stride = index == 0 ? 2 : 1;
            int inC = blocks.Count == 0 ? 3 : blocks[^1].OutChannels;
            if (inC % w.shape[1] != 0)
                throw new ModelInputException(sd.Source, $"key '{key}' reads {w.shape[1]} channels per group, which does not divide the {inC} input channels");
            int groups = (int)(inC / w.shape[1]);
            bool identity = sd.ContainsKey($"{prefix}.rbr_identity.running_var");
            if (identity && (stride != 1 || inC != outC))
                throw new ModelInputException(sd.Source, $"block '{prefix}' has an identity branch but changes shape ({inC} -> {outC}, stride {stride})");
            blocks.Add(new RepVggBlockSpec(prefix, stage, inC, outC, stride, groups, identity, deploy));
        }
        if (blocks.Count == 0) throw new ModelInputException(sd.Source, "not a RepVGG: no 'stage0.rbr_dense.conv.weight'");
        var fc = sd.Require("linear.weight");
        if (fc.dim() != 2 || fc.shape[1] != blocks[^1].OutChannels)
            throw new ModelInputException(sd.Source, $"key 'linear.weight' has shape [{string.Join(", ", fc.shape)}], expected [classes, {blocks[^1].OutChannels}]");
        var spec = new RepVggSpec(blocks, (int)fc.shape[0], null);
        return spec with { Name = Variants.Keys.FirstOrDefault(n => spec.SameLayout(Named(n, spec.NumClasses))) };
    }

    /// <summary>The official layout of a variant (train-time form).</summary>
    public static RepVggSpec Named(string name, int numClasses = 1000)
    {
        var (counts, a, b, g) = Variants[name];
        var widths = new[] { Math.Min(64, (int)(64 * a)), (int)(64 * a), (int)(128 * a), (int)(256 * a), (int)(512 * b) };
        var blocks = new List<RepVggBlockSpec>();
        int inC = 3, layer = -1;   // stage0 is layer 0; the official counter starts at 1 with stage1
        for (int stage = 0; stage < 5; stage++)
        {
            int n = stage == 0 ? 1 : counts[stage - 1];
            for (int i = 0; i < n; i++)
            {
                layer++;
                // Official grouped variants use groups on the even-numbered layers 2..26.
                int groups = g > 1 && layer % 2 == 0 && layer >= 2 && layer <= 26 ? g : 1;
                int stride = i == 0 ? 2 : 1;
                int outC = widths[stage];
                blocks.Add(new RepVggBlockSpec(stage == 0 ? "stage0" : $"stage{stage}.{i}", stage, inC, outC, stride, groups,
                    stride == 1 && inC == outC, false));
                inC = outC;
            }
        }
        return new RepVggSpec(blocks, numClasses, name);
    }

    /// <summary>Same blocks (channels, strides, groups, branches) and classes.</summary>
    public bool SameLayout(RepVggSpec other) => NumClasses == other.NumClasses && Blocks.Count == other.Blocks.Count &&
        Blocks.Zip(other.Blocks).All(p => p.First with { Deploy = false } == p.Second with { Deploy = false });

    /// <summary>A readable name.</summary>
    public string DisplayName => Name ?? $"RepVGG-like ({Blocks.Count} blocks, widths {string.Join("/", Blocks.Select(b => b.OutChannels).Distinct())})";
}
