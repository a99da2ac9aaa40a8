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

    /// <summary>Disposes every tensor.</summary>
    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
        _order.Clear();
    }
}
