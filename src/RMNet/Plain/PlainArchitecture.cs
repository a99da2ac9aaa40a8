using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace RMNet.Plain;

/// <summary>
/// The plain network's structure as JSON (stored in safetensors <c>__metadata__</c> under
/// <see cref="MetadataKey"/>) and its tensors under the names <c>layers.{i}.weight</c> / <c>layers.{i}.bias</c>.
/// </summary>
internal static class PlainArchitecture
{
    /// <summary>The metadata key that holds the architecture JSON.</summary>
    public const string MetadataKey = "rmnet.architecture";

    /// <summary>Format tag inside the JSON.</summary>
    public const string FormatTag = "rmnet-plain/1";

    /// <summary>The structure of <paramref name="model"/> as compact JSON.</summary>
    public static string ToJson(PlainModel model)
    {
        var layers = new JsonArray();
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var layer = model.Layers[i];
            var o = new JsonObject { ["kind"] = layer.Kind };
            if (model.LayerStages is { } stages) o["stage"] = stages[i];
            switch (layer)
            {
                case ConvLayer c:
                    o["stride"] = new JsonArray(c.StrideH, c.StrideW);
                    o["pads"] = new JsonArray(c.Padding.Top, c.Padding.Left, c.Padding.Bottom, c.Padding.Right);
                    o["groups"] = c.Groups;
                    break;
                case SeLayer se:
                    o["offset"] = se.Offset;
                    o["count"] = se.Count;
                    break;
                case MaxPoolLayer p:
                    o["kernel"] = p.Kernel;
                    o["stride"] = p.Stride;
                    o["pads"] = new JsonArray(p.Padding.Top, p.Padding.Left, p.Padding.Bottom, p.Padding.Right);
                    break;
            }
            layers.Add(o);
        }
        var root = new JsonObject { ["format"] = FormatTag, ["input_channels"] = model.InputChannels, ["layers"] = layers };
        if (model.FixedInputSize is int size) root["input_size"] = size;
        return root.ToJsonString();
    }

    /// <summary>The named tensors of <paramref name="model"/>, in layer order.</summary>
    public static IReadOnlyList<(string Name, Tensor Tensor)> Tensors(PlainModel model)
    {
        var list = new List<(string, Tensor)>();
        for (int i = 0; i < model.Layers.Count; i++)
        {
            switch (model.Layers[i])
            {
                case ConvLayer c: list.Add(($"layers.{i}.weight", c.Weight)); list.Add(($"layers.{i}.bias", c.Bias)); break;
                case LinearLayer l: list.Add(($"layers.{i}.weight", l.Weight)); list.Add(($"layers.{i}.bias", l.Bias)); break;
                case PReluLayer p: list.Add(($"layers.{i}.weight", p.Slope)); break;
                case SeLayer s:
                    list.Add(($"layers.{i}.fc1.weight", s.Fc1Weight)); list.Add(($"layers.{i}.fc1.bias", s.Fc1Bias));
                    list.Add(($"layers.{i}.fc2.weight", s.Fc2Weight)); list.Add(($"layers.{i}.fc2.bias", s.Fc2Bias));
                    break;
                case ClampLayer c: list.Add(($"layers.{i}.lower", c.Lower)); list.Add(($"layers.{i}.upper", c.Upper)); break;
            }
        }
        return list;
    }

    /// <summary>Rebuilds a plain model from its JSON and tensors; <paramref name="source"/> names the file in errors.</summary>
    public static PlainModel FromJson(string json, IReadOnlyDictionary<string, Tensor> tensors, string source)
    {
        try
        {
            var root = JsonNode.Parse(json)!.AsObject();
            if ((string?)root["format"] != FormatTag)
                throw new ModelInputException(source, $"architecture format '{root["format"]}' is not {FormatTag}");
            var layers = new List<PlainLayer>();
            var stages = new List<string>();
            var array = root["layers"]!.AsArray();
            for (int i = 0; i < array.Count; i++)
            {
                var o = array[i]!.AsObject();
                string kind = (string)o["kind"]!;
                if ((string?)o["stage"] is string stage) stages.Add(stage);
                Tensor T(string part) => tensors.TryGetValue($"layers.{i}.{part}", out var t) ? t.to_type(ScalarType.Float32)
                    : throw new ModelInputException(source, $"missing tensor 'layers.{i}.{part}' for layer {i} ({kind})");
                layers.Add(kind switch
                {
                    "conv" => new ConvLayer(T("weight"), T("bias"), (int)o["stride"]![0]!, (int)o["stride"]![1]!, Pads(o), (int)o["groups"]!),
                    "relu" => new ReluLayer(),
                    "prelu" => new PReluLayer(T("weight")),
                    "clamp" => new ClampLayer(T("lower"), T("upper")),
                    "se" => new SeLayer((long)o["offset"]!, (long)o["count"]!, T("fc1.weight"), T("fc1.bias"), T("fc2.weight"), T("fc2.bias")),
                    "maxpool" => new MaxPoolLayer((int)o["kernel"]!, (int)o["stride"]!, Pads(o)),
                    "gap" => new GlobalAvgPoolLayer(),
                    "flatten" => new FlattenLayer(),
                    "linear" => new LinearLayer(T("weight"), T("bias")),
                    _ => throw new ModelInputException(source, $"unknown layer kind '{kind}' at layer {i}"),
                });
            }
            return new PlainModel(layers, (int)root["input_channels"]!)
            {
                LayerStages = stages.Count == layers.Count ? stages : null,
                FixedInputSize = (int?)root["input_size"],
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new ModelInputException(source, $"malformed plain architecture: {e.Message}", e);
        }
    }

    static Padding2d Pads(JsonObject o)
    {
        var p = o["pads"]!.AsArray();
        return new Padding2d((int)p[0]!, (int)p[1]!, (int)p[2]!, (int)p[3]!);
    }
}
