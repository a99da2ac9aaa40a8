namespace RMNet.IO;

/// <summary>A global a pickle names (<c>module.name</c>): only ever a name here, never resolved or called.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    /// <inheritdoc />
    public override string ToString() => $"{Module}.{Name}";
}

/// <summary>
/// An object a pickle builds, kept as an inert record: its class name, the arguments it was made with, and the
/// state BUILD gave it (for a torch module, its <c>__dict__</c> with <c>_parameters</c>, <c>_buffers</c>,
/// <c>_modules</c>). No constructor or <c>__setstate__</c> runs.
/// </summary>
internal sealed class PickleObject(PickleGlobal type, object?[] args)
{
    /// <summary>The class (or allow-listed callable) named in the pickle.</summary>
    public PickleGlobal Type { get; } = type;
    /// <summary>The arguments the pickle passes to it.</summary>
    public object?[] Args { get; } = args;
    /// <summary>The state BUILD sets (usually a <see cref="PickleDict"/>), or null.</summary>
    public object? State { get; set; }

    /// <summary>The state's entries where it is a dict (also the dict half of a (dict, slots) state), else null.</summary>
    public PickleDict? StateDict => State switch
    {
        PickleDict d => d,
        object?[] { Length: 2 } pair => pair[0] as PickleDict,
        _ => null,
    };

    /// <inheritdoc />
    public override string ToString() => $"<{Type}>";
}

/// <summary>A pickled dict (or OrderedDict), in insertion order.</summary>
internal sealed class PickleDict
{
    readonly Dictionary<object, object?> _items = new(PickleKeyComparer.Instance);
    readonly List<object> _order = new();

    /// <summary>Sets <paramref name="key"/> (a string, number or tuple) to <paramref name="value"/>.</summary>
    public void Set(object? key, object? value)
    {
        key ??= PickleNone.Instance;
        if (!_items.ContainsKey(key)) _order.Add(key);
        _items[key] = value;
    }

    /// <summary>The value under a string key, or null.</summary>
    public object? Get(string key) => _items.GetValueOrDefault(key);

    /// <summary>True where the dict has <paramref name="key"/>.</summary>
    public bool Has(string key) => _items.ContainsKey(key);

    /// <summary>Entries in insertion order.</summary>
    public IEnumerable<KeyValuePair<object, object?>> Entries => _order.Select(k => new KeyValuePair<object, object?>(k, _items[k]));

    /// <summary>Number of entries.</summary>
    public int Count => _order.Count;
}

/// <summary>Python's None as a dict key (values use null).</summary>
internal sealed class PickleNone
{
    /// <summary>The one instance.</summary>
    public static readonly PickleNone Instance = new();
    /// <inheritdoc />
    public override string ToString() => "None";
}

/// <summary>
/// Dict keys compare by value for strings and numbers, and tuples by their elements' values one level deep
/// (no recursion, so a hostile key nested a million tuples deep costs nothing).
/// </summary>
sealed class PickleKeyComparer : IEqualityComparer<object>
{
    public static readonly PickleKeyComparer Instance = new();

    public new bool Equals(object? x, object? y) => (x, y) switch
    {
        (object?[] a, object?[] b) => a.Length == b.Length && a.Zip(b).All(p => object.Equals(p.First, p.Second)),
        _ => object.Equals(x, y),
    };

    public int GetHashCode(object o) => o is object?[] a
        ? a.Aggregate(17, (h, v) => h * 31 + (v is null or object?[] ? 0 : v.GetHashCode()))
        : o.GetHashCode();
}

/// <summary>A tensor storage a pickle refers to by persistent id: the archive entry <c>data/{Key}</c>.</summary>
internal sealed record PickleStorage(string Key, string StorageType, long Count);

/// <summary>A tensor a pickle rebuilds (<c>torch._utils._rebuild_tensor_v2</c>): a strided view of a storage.</summary>
internal sealed record PickleTensor(PickleStorage Storage, long Offset, long[] Shape, long[] Stride);
