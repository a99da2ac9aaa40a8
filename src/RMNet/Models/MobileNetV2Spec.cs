namespace RMNet.Models;

/// <summary>One torchvision inverted residual block, <c>features.{Index}</c>.</summary>
/// <param name="Index">Position in <c>features</c>.</param>
/// <param name="InChannels">Input channels.</param>
/// <param name="Hidden">Expanded channels (equals the input where there is no expansion).</param>
/// <param name="OutChannels">Output channels.</param>
/// <param name="Stride">Stride of the depthwise conv.</param>
/// <param name="Expand">True where a 1x1 expansion conv comes first (expand ratio above 1).</param>
internal sealed record InvertedResidualSpec(int Index, int InChannels, int Hidden, int OutChannels, int Stride, bool Expand)
{
    /// <summary>torchvision's use_res_connect: stride 1 and same channels.</summary>
    public bool Residual => Stride == 1 && InChannels == OutChannels;

    /// <summary>State-dict prefix.</summary>
    public string Prefix => $"features.{Index}.conv";
}

/// <summary>
/// torchvision's MobileNetV2 (any width multiplier), read from the state dict: stem <c>features.0</c>
/// (3x3/2 conv, BN, ReLU6), inverted residual blocks <c>features.1</c>..<c>features.N-1</c>, the last 1x1
/// conv <c>features.N</c>, and <c>classifier.1</c>. Strides are not stored in a state dict: they follow
/// torchvision's standard setting (17 blocks), which every width multiplier keeps.
/// </summary>
internal sealed record MobileNetV2Spec(int StemWidth, IReadOnlyList<InvertedResidualSpec> Blocks, int LastIndex, int LastWidth, int NumClasses)
{
    // torchvision's inverted_residual_setting (t, c, n, s): [1,16,1,1] [6,24,2,2] [6,32,3,2] [6,64,4,2] [6,96,3,1]
    // [6,160,3,2] [6,320,1,1]: the first block of each group has stride s, the others 1.
    static readonly int[] StandardStrides = { 1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1 };

    /// <summary>True where the state dict uses torchvision's MobileNetV2 names.</summary>
    public static bool Matches(StateDict sd) => sd.ContainsKey("features.0.0.weight") && sd.ContainsKey("features.1.conv.0.0.weight") && sd.ContainsKey("classifier.1.weight");

    /// <summary>Reads the layout; throws <see cref="ModelInputException"/> naming what does not fit.</summary>
    public static MobileNetV2Spec Detect(StateDict sd)
    {
        int stem = (int)sd.Require("features.0.0.weight").shape[0];
        var blocks = new List<(int Index, int In, int Hidden, int Out, bool Expand)>();
        int i = 1, inC = stem;
        for (; sd.ContainsKey($"features.{i}.conv.0.0.weight"); i++)
        {
            bool expand = sd.ContainsKey($"features.{i}.conv.3.weight");
            var first = sd.Require($"features.{i}.conv.0.0.weight");
            int hidden = expand ? (int)first.shape[0] : inC;
            var project = sd.Require(expand ? $"features.{i}.conv.2.weight" : $"features.{i}.conv.1.weight");
            if (project.dim() != 4 || project.shape[1] != hidden)
                throw new ModelInputException(sd.Source, $"key '{(expand ? $"features.{i}.conv.2.weight" : $"features.{i}.conv.1.weight")}' has shape [{string.Join(", ", project.shape)}], expected [out, {hidden}, 1, 1]");
            blocks.Add((i, inC, hidden, (int)project.shape[0], expand));
            inC = (int)project.shape[0];
        }
        var last = sd.Require($"features.{i}.0.weight");
        if (blocks.Count != StandardStrides.Length)
            throw new ModelInputException(sd.Source, $"{blocks.Count} inverted residual blocks; torchvision's standard MobileNetV2 setting has {StandardStrides.Length} (strides are not stored in a state dict)");
        // Narrow width multipliers can give neighbouring groups the same width, so strides go by position.
        var result = blocks.Select((b, k) => new InvertedResidualSpec(b.Index, b.In, b.Hidden, b.Out, StandardStrides[k], b.Expand)).ToList();
        var fc = sd.Require("classifier.1.weight");
        return new MobileNetV2Spec(stem, result, i, (int)last.shape[0], (int)fc.shape[0]);
    }

    /// <summary>A readable name.</summary>
    public string DisplayName => StemWidth == 32 && LastWidth == 1280 ? "mobilenet_v2" : $"mobilenet_v2 (stem {StemWidth}, last {LastWidth})";
}
