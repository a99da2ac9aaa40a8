using static TorchSharp.torch;

namespace RMNet.Plain;

/// <summary>
/// A plain network: an ordered list of layers with no branches and no additions, produced by the RM transform
/// (<see cref="Models.ISourceModel.ToPlain"/>). It reports its cost, runs as a TorchSharp module
/// (<see cref="ToModule"/>) and is written by <see cref="IO.ModelWriter.Save"/>.
/// </summary>
/// <remarks>
/// A plain model owns its weight tensors: <see cref="Dispose"/> frees them (the garbage collector does otherwise, later).
/// A module made by <see cref="ToModule"/> holds its own references to the same weights (no copy), so either can be
/// disposed first. Everything else (costs, <see cref="Forward"/>, <see cref="IO.ModelWriter.Save"/>) reads the
/// weights and raises <see cref="ObjectDisposedException"/> on a disposed model.
/// </remarks>
public sealed class PlainModel : IDisposable
{
    /// <summary>A plain model of <paramref name="layers"/>, which it then owns.</summary>
    /// <param name="layers">The layers, in order.</param>
    /// <param name="inputChannels">Channels of the input image.</param>
    internal PlainModel(IReadOnlyList<PlainLayer> layers, int inputChannels = 3) => (_layers, InputChannels) = (layers, inputChannels);

    readonly IReadOnlyList<PlainLayer> _layers;

    /// <summary>The layers, in order; everything that reads the weights comes through here, so a disposed model says so.</summary>
    internal IReadOnlyList<PlainLayer> Layers
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _layers;
        }
    }

    /// <summary>Channels of the input image.</summary>
    public int InputChannels { get; }

    /// <summary>
    /// The input height and width the network requires (a flatten + linear head fixes it, as in IResNet), or null
    /// where any size works. Costs are then computed at this size and ONNX declares it.
    /// </summary>
    public int? FixedInputSize { get; internal init; }

    /// <summary>Zero channels the grouped RM form added so that reserved channels fill whole groups.</summary>
    public int ZeroChannels { get; internal init; }

    /// <summary>
    /// The same network with other layers (which it then owns; layers taken over unchanged are shared with this model)
    /// and this model's input size, zero channels and stages.
    /// </summary>
    internal PlainModel WithLayers(IReadOnlyList<PlainLayer> layers) =>
        new(layers, InputChannels) { FixedInputSize = FixedInputSize, ZeroChannels = ZeroChannels, LayerStages = LayerStages };

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
    internal IReadOnlyList<string>? LayerStages { get; init; }

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
    internal IEnumerable<ConvLayer> Convs => Layers.OfType<ConvLayer>();

    /// <summary>
    /// A TorchSharp module that runs this network (eval mode, float32). The module shares this model's weights (no
    /// copy) through references of its own: disposing this model afterwards leaves the module working, and disposing
    /// the module leaves this model whole. Dispose the module when done with it.
    /// </summary>
    /// <exception cref="ObjectDisposedException">This model was disposed.</exception>
    public PlainModule ToModule()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new(WithLayers(Layers.Select(PlainLayer.Alias).ToList()));
    }

    /// <summary>Runs the network once on <paramref name="input"/> [N, C, H, W], without autograd.</summary>
    /// <exception cref="ObjectDisposedException">This model was disposed.</exception>
    public Tensor Forward(Tensor input)
    {
        using var module = ToModule();
        return module.forward(input);
    }

    bool _disposed;

    /// <summary>Frees the weight tensors. Modules made by <see cref="ToModule"/> keep their own references and still run.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var tensor in _layers.SelectMany(PlainLayer.TensorsOf)) tensor.Dispose();
    }
}
