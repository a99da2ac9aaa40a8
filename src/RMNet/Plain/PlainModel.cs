using static TorchSharp.torch;

namespace RMNet.Plain;

/// <summary>
/// A plain network: an ordered list of layers with no branches and no additions. Produced by the RM
/// transform; runs as a TorchSharp module (<see cref="ToModule"/>), reports its cost, and is saved by the IO writers.
/// </summary>
/// <param name="Layers">The layers, in order.</param>
/// <param name="InputChannels">Channels of the input image.</param>
public sealed record PlainModel(IReadOnlyList<PlainLayer> Layers, int InputChannels = 3)
{
    /// <summary>
    /// The input height and width the network requires (a flatten + linear head fixes it, as in IResNet), or null
    /// where any size works. Costs are then computed at this size and ONNX declares it.
    /// </summary>
    public int? FixedInputSize { get; init; }

    /// <summary>Zero channels the grouped RM form added so that reserved channels fill whole groups.</summary>
    public int ZeroChannels { get; init; }

    /// <summary>Number of weights and biases.</summary>
    public long ParameterCount => Layers.Sum(l => l.ParameterCount);

    /// <summary>Multiply-accumulates for one image of the given size.</summary>
    public long MultiplyAccumulates(int height, int width)
    {
        (height, width) = (FixedInputSize ?? height, FixedInputSize ?? width);
        var shape = ((long)InputChannels, (long)height, (long)width);
        long total = 0;
        foreach (var layer in Layers)
        {
            total += layer.MultiplyAccumulates(shape);
            shape = layer.OutputShape(shape);
        }
        return total;
    }

    /// <summary>The stage each layer belongs to ("stem", "layer1", ..., "head"), where the producer knows it; else null.</summary>
    public IReadOnlyList<string>? LayerStages { get; init; }

    /// <summary>Parameters and MACs per stage (in order of first appearance) for one image of the given size.</summary>
    public IReadOnlyList<Models.StageCost> CostByStage(int height, int width)
    {
        (height, width) = (FixedInputSize ?? height, FixedInputSize ?? width);
        var shape = ((long)InputChannels, (long)height, (long)width);
        var order = new List<string>();
        var cost = new Dictionary<string, (long Params, long Macs)>();
        for (int i = 0; i < Layers.Count; i++)
        {
            string stage = LayerStages?[i] ?? "all";
            if (!cost.ContainsKey(stage)) { order.Add(stage); cost[stage] = (0, 0); }
            var (p, m) = cost[stage];
            cost[stage] = (p + Layers[i].ParameterCount, m + Layers[i].MultiplyAccumulates(shape));
            shape = Layers[i].OutputShape(shape);
        }
        return order.Select(s => new Models.StageCost(s, cost[s].Params, cost[s].Macs)).ToList();
    }

    /// <summary>Number of output values per image (classes).</summary>
    public long OutputSize(int height, int width)
    {
        (height, width) = (FixedInputSize ?? height, FixedInputSize ?? width);
        var shape = ((long)InputChannels, (long)height, (long)width);
        foreach (var layer in Layers) shape = layer.OutputShape(shape);
        return shape.Item1 * shape.Item2 * shape.Item3;
    }

    /// <summary>The convolution layers, in order.</summary>
    public IEnumerable<ConvLayer> Convs => Layers.OfType<ConvLayer>();

    /// <summary>A TorchSharp module that runs this network (eval mode, float32).</summary>
    public PlainModule ToModule() => new(this);

    /// <summary>Runs the network once, without autograd.</summary>
    public Tensor Forward(Tensor input)
    {
        using var module = ToModule();
        return module.forward(input);
    }
}
