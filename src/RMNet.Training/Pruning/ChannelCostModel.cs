namespace RMNet.Pruning;

/// <summary>
/// Multiply-accumulates of a network as a function of the channel counts pruning may change:
/// MACs = constant + sum over layers of a_l * n_l + sum over connected pairs of c_ab * n_a * n_b,
/// where n_l is the number of channels layer l keeps. A conv between two prunable layers is a pair term; a conv
/// whose other side is fixed (the image, the classifier, a residual stream) is a linear term.
/// </summary>
internal sealed class ChannelCostModel
{
    readonly long[] _linear;
    readonly List<(int A, int B, long Coefficient)> _pairs = new();

    /// <summary>A model over <paramref name="layers"/> prunable layers, all terms zero.</summary>
    public ChannelCostModel(int layers) => _linear = new long[layers];

    /// <summary>Number of prunable layers.</summary>
    public int LayerCount => _linear.Length;

    /// <summary>MACs that no pruning changes.</summary>
    public long Constant { get; set; }

    /// <summary>Adds <paramref name="coefficient"/> * n_layer.</summary>
    public void AddLinear(int layer, long coefficient) => _linear[layer] += coefficient;

    /// <summary>Adds <paramref name="coefficient"/> * n_a * n_b, for two different layers (a conv between them).</summary>
    public void AddPair(int a, int b, long coefficient)
    {
        if (a == b) throw new ArgumentException($"a pair term joins two different layers, not layer {a} with itself");
        _pairs.Add((a, b, coefficient));
    }

    /// <summary>MACs with <paramref name="counts"/> channels kept per layer.</summary>
    public long Macs(IReadOnlyList<int> counts) =>
        Constant + _linear.Select((a, l) => a * counts[l]).Sum() + _pairs.Sum(p => p.Coefficient * counts[p.A] * counts[p.B]);

    /// <summary>
    /// MACs saved by removing one channel of <paramref name="layer"/> at <paramref name="counts"/>. With no pair
    /// joining a layer to itself, MACs are linear in any one layer's count, so k channels save k times this.
    /// </summary>
    public long SavingOfOne(int layer, IReadOnlyList<int> counts) =>
        _linear[layer] + _pairs.Where(p => p.A == layer || p.B == layer).Sum(p => p.Coefficient * counts[p.A == layer ? p.B : p.A]);
}
