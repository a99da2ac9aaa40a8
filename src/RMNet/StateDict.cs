using System.Collections;
using static TorchSharp.torch;

namespace RMNet;

/// <summary>Named tensors in file order, as read from a checkpoint, with the file they came from.</summary>
public sealed class StateDict : IReadOnlyDictionary<string, Tensor>, IDisposable
{
    readonly List<string> _order = new();
    readonly Dictionary<string, Tensor> _tensors = new();

    /// <summary>An empty state dict attributed to <paramref name="source"/> (a path, or a label such as "demo").</summary>
    public StateDict(string source) => Source = source;

    /// <summary>The file (or label) the tensors came from; errors name it.</summary>
    public string Source { get; }

    /// <summary>The checkpoint key the weights were read from (<c>state_dict</c>, <c>model</c>, ...); null where they are the file's top level.</summary>
    public string? WeightsKey { get; internal set; }

    /// <summary>Other top-level keys of the checkpoint that hold weights too (e.g. <c>state_dict_ema</c>).</summary>
    public IReadOnlyList<string> OtherWeightsKeys { get; internal set; } = Array.Empty<string>();

    /// <summary>The wrapper prefix removed from every name (<c>module.</c>, <c>model.</c>, <c>_orig_mod.</c>, or several); null where none.</summary>
    public string? RemovedPrefix { get; internal set; }

    /// <summary>The modules of a whole module (<c>torch.save(model)</c>) by name, wrapper prefix removed; empty for a state dict.</summary>
    internal IReadOnlyDictionary<string, IO.SavedModule> SavedModules
    {
        get => _savedModules;
        init
        {
            _savedModules = value;
            // A state dict does not hold a BatchNorm's epsilon; a whole module does (torch.nn BatchNorm*d's attribute 'eps').
            SavedBatchNormEps = value.Where(kv => kv.Value.Class.StartsWith("BatchNorm", StringComparison.Ordinal) && kv.Value.Attributes.GetValueOrDefault("eps") is double)
                .ToDictionary(kv => kv.Key, kv => (double)kv.Value.Attributes["eps"]);
        }
    }

    readonly IReadOnlyDictionary<string, IO.SavedModule> _savedModules = new Dictionary<string, IO.SavedModule>();

    /// <summary>The BatchNorm epsilons a whole module was saved with, by module name; empty for a state dict.</summary>
    internal IReadOnlyDictionary<string, double> SavedBatchNormEps { get; private init; } = new Dictionary<string, double>();

    /// <summary>Adds or replaces a tensor, keeping first-insertion order.</summary>
    public void Add(string key, Tensor value)
    {
        if (!_tensors.ContainsKey(key)) _order.Add(key);
        _tensors[key] = value;
    }

    /// <summary>The tensor under <paramref name="key"/>, or a <see cref="ModelInputException"/> naming the file and key.</summary>
    public Tensor Require(string key) =>
        _tensors.TryGetValue(key, out var t) ? t : throw new ModelInputException(Source, $"missing key '{key}'");

    /// <inheritdoc />
    public Tensor this[string key] => _tensors[key];
    /// <inheritdoc />
    public IEnumerable<string> Keys => _order;
    /// <inheritdoc />
    public IEnumerable<Tensor> Values => _order.Select(k => _tensors[k]);
    /// <inheritdoc />
    public int Count => _order.Count;
    /// <inheritdoc />
    public bool ContainsKey(string key) => _tensors.ContainsKey(key);
    /// <inheritdoc />
    public bool TryGetValue(string key, out Tensor value) => _tensors.TryGetValue(key, out value!);
    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator() =>
        _order.Select(k => new KeyValuePair<string, Tensor>(k, _tensors[k])).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>
    /// The tensors for a TorchSharp module's <c>load_state_dict</c>: floating-point values as float32 (checkpoints
    /// may hold float16 or float64), BN step counters as they are.
    /// </summary>
    internal Dictionary<string, Tensor> ToModuleWeights() => _order.ToDictionary(k => k, k =>
        k.EndsWith("num_batches_tracked", StringComparison.Ordinal) ? _tensors[k] : _tensors[k].to_type(ScalarType.Float32));

    /// <summary>
    /// Loads the tensors into <paramref name="module"/> (strictly), first refusing, naming the key, a tensor the module has
    /// and the checkpoint lacks or one the checkpoint has and the module lacks (TorchSharp says only that the two differ).
    /// </summary>
    internal void LoadInto(TorchSharp.torch.nn.Module module)
    {
        var weights = ToModuleWeights();
        var expected = module.state_dict().Keys.ToList();
        if (expected.FirstOrDefault(k => !weights.ContainsKey(k) && !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)) is { } missing)
            throw new ModelInputException(Source, $"missing key '{missing}'");
        if (weights.Keys.FirstOrDefault(k => !expected.Contains(k)) is { } extra)
            throw new ModelInputException(Source, $"key '{extra}' is no tensor of the layout read from the checkpoint's names");
        module.load_state_dict(weights, strict: false);
    }

    /// <summary>Learnable parameters under <paramref name="prefix"/> (BN running statistics and step counters excluded).</summary>
    internal long ParameterCount(string prefix) => _order
        .Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !k.EndsWith("running_mean", StringComparison.Ordinal)
            && !k.EndsWith("running_var", StringComparison.Ordinal) && !k.EndsWith("num_batches_tracked", StringComparison.Ordinal))
        .Sum(k => _tensors[k].numel());

    /// <summary>Disposes every tensor.</summary>
    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
        _order.Clear();
    }
}
