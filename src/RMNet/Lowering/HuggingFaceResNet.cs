using Onnx;

namespace RMNet.Lowering;

/// <summary>
/// Hugging Face transformers' <c>ResNetForImageClassification</c> (the hub's <c>microsoft/resnet-*</c> checkpoints):
/// stem <c>resnet.embedder.embedder.convolution/normalization</c> + ReLU + max pool; layers
/// <c>resnet.encoder.stages.i.layers.j</c> whose <c>layer.k.convolution/normalization</c> are two 3x3 convs (basic) or
/// 1x1, 3x3, 1x1 (bottleneck), and a <c>shortcut.convolution/normalization</c> where the width or size changes;
/// head <c>classifier.1</c>. A state dict does not hold the config: its defaults are assumed, as in the hub's
/// checkpoints (<c>downsample_in_first_stage</c> false: the first stage keeps the size; <c>downsample_in_bottleneck</c>
/// false: a bottleneck's stride is in its 3x3 conv). Every conv is padded by half its kernel, BN eps 1e-5.
/// </summary>
internal static class HuggingFaceResNet
{
    const string Stem = "resnet.embedder.embedder";

    /// <summary>True for the names of <c>ResNetForImageClassification</c>.</summary>
    public static bool Matches(StateDict sd) =>
        sd.ContainsKey($"{Stem}.convolution.weight") && sd.ContainsKey("classifier.1.weight") && sd.ContainsKey(Layer(0, 0) + ".layer.0.convolution.weight");

    /// <summary>E.g. "Hugging Face ResNet, Bottleneck layers 3-4-6-3, 1000 classes".</summary>
    public static string Describe(StateDict sd) =>
        $"Hugging Face ResNet, {(Bottleneck(sd) ? "Bottleneck" : "Basic")} layers {string.Join("-", Depths(sd))}, {sd.Require("classifier.1.weight").shape[0]} classes";

    /// <summary>The network as a graph, with <paramref name="eps"/> the BatchNorms' epsilon.</summary>
    public static ModelProto Lower(StateDict sd, double eps = 1e-5)
    {
        var g = new GraphBuilder(sd);
        string x = g.Relu(g.ConvBn(g.Input, $"{Stem}.convolution", $"{Stem}.normalization", stride: 2, eps: eps), $"{Stem}.activation");
        x = g.MaxPool(x, "resnet.embedder.pooler", 3, 2, 1);
        bool bottleneck = Bottleneck(sd);
        var depths = Depths(sd);
        for (int stage = 0; stage < depths.Count; stage++)
            for (int layer = 0; layer < depths[stage]; layer++)
            {
                string p = Layer(stage, layer);
                int stride = stage > 0 && layer == 0 ? 2 : 1;
                var y = x;
                int convs = bottleneck ? 3 : 2;
                for (int k = 0; k < convs; k++)
                {
                    // The stride sits in the 3x3 conv: the first of a basic layer, the middle one of a bottleneck.
                    int s = k == (bottleneck ? 1 : 0) ? stride : 1;
                    y = g.ConvBn(y, $"{p}.layer.{k}.convolution", $"{p}.layer.{k}.normalization", s, eps: eps);
                    if (k < convs - 1) y = g.Relu(y, $"{p}.layer.{k}.activation");
                }
                string shortcut = sd.ContainsKey($"{p}.shortcut.convolution.weight")
                    ? g.ConvBn(x, $"{p}.shortcut.convolution", $"{p}.shortcut.normalization", stride, eps: eps)
                    : x;
                x = g.Relu(g.Sum(y, shortcut, $"{p}.add"), $"{p}.activation");
            }
        g.Classifier(x, "classifier.1");
        return g.Build(sd.Require($"{Stem}.convolution.weight").shape[1], sd.Require("classifier.1.weight").shape[0],
            $"lowered by rmnet from '{Path.GetFileName(sd.Source)}': {Describe(sd)}");
    }

    static string Layer(int stage, int layer) => $"resnet.encoder.stages.{stage}.layers.{layer}";

    /// <summary>Stages <c>resnet.encoder.stages.i</c> and their layers.</summary>
    public static LoweredLayout Layout(StateDict sd) => LoweredLayout.Of(Depths(sd), i => $"resnet.encoder.stages.{i}");

    static bool Bottleneck(StateDict sd) => sd.ContainsKey(Layer(0, 0) + ".layer.2.convolution.weight");

    /// <summary>Layers per stage.</summary>
    static List<int> Depths(StateDict sd) => StageDepths.Count((stage, layer) => sd.ContainsKey(Layer(stage, layer) + ".layer.0.convolution.weight"));
}
