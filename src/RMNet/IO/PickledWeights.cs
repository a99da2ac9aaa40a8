namespace RMNet.IO;

/// <summary>
/// Finds the named tensors in what <see cref="PickleReader"/> read: a state dict; a training checkpoint with the
/// weights under <c>state_dict</c>, <c>model</c>, <c>model_state_dict</c>, <c>net</c> or <c>module</c>; a whole
/// module (<c>torch.save(model)</c>: <c>_parameters</c>, persistent <c>_buffers</c> and <c>_modules</c>, nested
/// names dotted as <c>state_dict()</c> dots them); or a TorchScript module (its tensor attributes and
/// <c>__torch__</c> submodules).
/// </summary>
public static class PickledWeights
{
    /// <summary>Keys under which training checkpoints keep the weights, tried in this order.</summary>
    public static IReadOnlyList<string> WrapperKeys { get; } = new[] { "state_dict", "model", "model_state_dict", "net", "module" };

    const int MaxModuleDepth = 64;

    /// <summary>What to run in PyTorch when the weights cannot be found.</summary>
    public const string ReSave = "; in PyTorch, save the model's weights with torch.save(model.state_dict(), 'weights.pth')";

    /// <summary>The named tensors in <paramref name="root"/>, in state-dict order; <paramref name="path"/> names the file in errors.</summary>
    public static List<(string Name, PickleTensor Tensor)> Find(object? root, string path)
    {
        for (int depth = 0; depth < 4; depth++)
        {
            if (root is PickleObject module && IsModule(module))
            {
                var named = new List<(string, PickleTensor)>();
                Flatten(module, "", named, 0, path);
                return named;
            }
            if (root is not PickleDict table)
                throw new ModelInputException(path, $"holds {Describe(root)}, not a state dict or a module{ReSave}");
            if (table.Count > 0 && table.Entries.All(e => e.Value is PickleTensor))
                return table.Entries.Select(e => (e.Key as string ?? throw new ModelInputException(path, $"state dict key {e.Key} is not a string"), (PickleTensor)e.Value!)).ToList();
            var inner = WrapperKeys.Select(table.Get).FirstOrDefault(v => v is PickleDict || v is PickleObject o && IsModule(o));
            if (inner is null)
            {
                string keys = string.Join(", ", table.Entries.Take(8).Select(e => e.Key));
                throw new ModelInputException(path, $"no state dict found: top-level keys are [{keys}], none of {string.Join("/", WrapperKeys)} holds tensors or a module{ReSave}");
            }
            root = inner;
        }
        throw new ModelInputException(path, "checkpoint nesting too deep to find the state dict");
    }

    /// <summary>A torch.nn.Module record (it has <c>_parameters</c> or <c>_modules</c>) or a TorchScript object.</summary>
    static bool IsModule(PickleObject o) =>
        o.StateDict is { } st && (st.Has("_parameters") || st.Has("_modules")) || o.Type.Module.StartsWith("__torch__", StringComparison.Ordinal);

    static void Flatten(PickleObject module, string prefix, List<(string, PickleTensor)> named, int depth, string path)
    {
        if (depth > MaxModuleDepth) throw new ModelInputException(path, $"modules nested deeper than {MaxModuleDepth} levels (or a module that contains itself)");
        var state = module.StateDict;
        if (state is null) return;
        if (state.Has("_parameters") || state.Has("_modules"))
        {
            var nonPersistent = Strings(state.Get("_non_persistent_buffers_set"));
            foreach (var (name, value) in Entries(state.Get("_parameters")))
                if (value is PickleTensor t) named.Add((prefix + name, t));
            foreach (var (name, value) in Entries(state.Get("_buffers")))
                if (value is PickleTensor t && !nonPersistent.Contains(name)) named.Add((prefix + name, t));
            foreach (var (name, value) in Entries(state.Get("_modules")))
                if (value is PickleObject child) Flatten(child, $"{prefix}{name}.", named, depth + 1, path);
            return;
        }
        // TorchScript: parameters, buffers and submodules are all plain attributes.
        foreach (var (name, value) in Entries(state))
        {
            if (value is PickleTensor t) named.Add((prefix + name, t));
            else if (value is PickleObject child && child.Type.Module.StartsWith("__torch__", StringComparison.Ordinal))
                Flatten(child, $"{prefix}{name}.", named, depth + 1, path);
        }
    }

    static IEnumerable<(string Name, object? Value)> Entries(object? dict) =>
        dict is PickleDict d ? d.Entries.Where(e => e.Key is string).Select(e => ((string)e.Key, e.Value)) : Enumerable.Empty<(string, object?)>();

    /// <summary>The strings in a pickled set (<c>set([...])</c> or an EMPTY_SET filled by ADDITEMS).</summary>
    static HashSet<string> Strings(object? set) => set switch
    {
        PickleObject { Args: [List<object?> items, ..] } => items.OfType<string>().ToHashSet(),
        List<object?> items => items.OfType<string>().ToHashSet(),
        _ => new HashSet<string>(),
    };

    static string Describe(object? v) => v switch
    {
        null => "None",
        PickleObject o => $"an object of class {o.Type}",
        PickleTensor => "a single tensor",
        List<object?> => "a list",
        object?[] => "a tuple",
        string => "a string",
        _ => $"a {v.GetType().Name}",
    };
}
