namespace RMNet.IO;

/// <summary>
/// Finds the named tensors in what <see cref="PickleReader"/> read: a state dict; a training checkpoint with the
/// weights under <c>state_dict</c>, <c>model</c>, <c>model_state_dict</c>, <c>net</c> or <c>module</c>; a whole
/// module (<c>torch.save(model)</c>: <c>_parameters</c>, persistent <c>_buffers</c> and <c>_modules</c>, nested
/// names dotted as <c>state_dict()</c> dots them); or a TorchScript module (its tensor attributes and
/// <c>__torch__</c> submodules).
/// </summary>
internal static class PickledWeights
{
    /// <summary>Keys under which training checkpoints keep the weights, tried in this order.</summary>
    public static IReadOnlyList<string> WrapperKeys { get; } = new[] { "state_dict", "model", "model_state_dict", "net", "module" };

    const int MaxModuleDepth = 64;

    /// <summary>What to run in PyTorch when the weights cannot be found.</summary>
    public const string ReSave = "; in PyTorch, save the model's weights with torch.save(model.state_dict(), 'weights.pth')";

    /// <summary>The named tensors in <paramref name="root"/>, in state-dict order; <paramref name="path"/> names the file in errors.</summary>
    public static List<(string Name, PickleTensor Tensor)> Find(object? root, string path) => Locate(root, path).Named;

    /// <summary>
    /// The weights in <paramref name="root"/>: under the top-level key <paramref name="weightsKey"/> where given (refused
    /// where the checkpoint has no such key), else where <see cref="Find"/> looks; with the key they were found under and
    /// the other top-level keys that hold weights (EMA copies such as <c>state_dict_ema</c>, <c>model_ema</c>).
    /// </summary>
    public static FoundWeights Locate(object? root, string path, string? weightsKey = null)
    {
        var others = new List<string>();
        string? key = null;
        if (root is PickleDict top && !IsStateDict(top))
        {
            if (weightsKey is not null)
            {
                if (!top.Has(weightsKey))
                    throw new ModelInputException(path, $"--weights-key: the checkpoint has no key '{weightsKey}'; its keys are [{Keys(top)}]");
                if (!HoldsWeights(top.Get(weightsKey)))
                    throw new ModelInputException(path, $"--weights-key: '{weightsKey}' holds {Describe(top.Get(weightsKey))}, not a state dict or a module");
                key = weightsKey;
            }
            else
            {
                key = WrapperKeys.FirstOrDefault(k => HoldsWeights(top.Get(k)));
                // YOLO's training checkpoints hold the trained model under 'model' and the weights they deploy under 'ema' (their
                // loaders read `ckpt.get('ema') or ckpt['model']`): so does this, where 'ema' holds weights (it is None once stripped),
                // also where 'model' is None.
                if ((key is null || key == "model") && HoldsWeights(top.Get("ema"))) key = "ema";
            }
            others = top.Entries.Where(e => e.Key is string k && k != key && HoldsWeights(e.Value)).Select(e => (string)e.Key).ToList();
            if (key is not null) root = top.Get(key);
        }
        else if (weightsKey is not null)
            throw new ModelInputException(path, $"--weights-key: the file holds {(root is PickleDict ? "a state dict" : Describe(root))} at its top level, not a checkpoint with keys to choose from");
        var modules = new Dictionary<string, SavedModule>(StringComparer.Ordinal);
        return new FoundWeights(Search(root, path, modules), key, others) { Modules = modules };
    }

    /// <summary>A dict whose values are all tensors.</summary>
    static bool IsStateDict(PickleDict table) => table.Count > 0 && table.Entries.All(e => e.Value is PickleTensor);

    /// <summary>A state dict (possibly wrapped once more) or a module.</summary>
    static bool HoldsWeights(object? v) => v is PickleDict d && (IsStateDict(d) || WrapperKeys.Any(k => d.Get(k) is PickleDict or PickleObject))
        || v is PickleObject o && IsModule(o);

    static string Keys(PickleDict table) => string.Join(", ", table.Entries.Take(8).Select(e => e.Key));

    /// <summary>The named tensors; a whole module's modules (class and plain attributes) go to <paramref name="modules"/> by name.</summary>
    static List<(string Name, PickleTensor Tensor)> Search(object? root, string path, Dictionary<string, SavedModule> modules)
    {
        for (int depth = 0; depth < 4; depth++)
        {
            if (root is PickleObject module && IsModule(module))
            {
                var named = new List<(string, PickleTensor)>();
                Flatten(module, "", named, 0, path, modules);
                return named;
            }
            if (root is not PickleDict table)
                throw new ModelInputException(path, $"holds {Describe(root)}, not a state dict or a module{ReSave}");
            if (IsStateDict(table))
                return table.Entries.Select(e => (e.Key as string ?? throw new ModelInputException(path, $"state dict key {e.Key} is not a string"), (PickleTensor)e.Value!)).ToList();
            var inner = WrapperKeys.Select(table.Get).FirstOrDefault(v => v is PickleDict || v is PickleObject o && IsModule(o));
            if (inner is null)
            {
                throw new ModelInputException(path, $"no state dict found: top-level keys are [{Keys(table)}], none of {string.Join("/", WrapperKeys)} holds tensors or a module{ReSave}");
            }
            root = inner;
        }
        throw new ModelInputException(path, "checkpoint nesting too deep to find the state dict");
    }

    /// <summary>A torch.nn.Module record (it has <c>_parameters</c> or <c>_modules</c>) or a TorchScript object.</summary>
    static bool IsModule(PickleObject o) =>
        o.StateDict is { } st && (st.Has("_parameters") || st.Has("_modules")) || o.Type.Module.StartsWith("__torch__", StringComparison.Ordinal);

    static void Flatten(PickleObject module, string prefix, List<(string, PickleTensor)> named, int depth, string path, Dictionary<string, SavedModule> modules)
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
                if (value is PickleObject child) Flatten(child, $"{prefix}{name}.", named, depth + 1, path, modules);
            // A state dict holds neither a module's class nor its plain attributes (a BatchNorm's eps, a pool's size); a whole
            // module does, and a child set to None is no module at all (a block's absent identity branch).
            modules[prefix.TrimEnd('.')] = new SavedModule(module.Type.Name, Attributes(state));
            return;
        }
        // TorchScript: parameters, buffers and submodules are all plain attributes.
        foreach (var (name, value) in Entries(state))
        {
            if (value is PickleTensor t) named.Add((prefix + name, t));
            else if (value is PickleObject child && child.Type.Module.StartsWith("__torch__", StringComparison.Ordinal))
                Flatten(child, $"{prefix}{name}.", named, depth + 1, path, modules);
        }
    }

    /// <summary>A module's plain attributes that are numbers, booleans, strings or tuples of integers (as <c>long[]</c>).</summary>
    static Dictionary<string, object> Attributes(PickleDict state)
    {
        var attributes = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (name, value) in Entries(state))
        {
            object? kept = value switch
            {
                long or double or bool or string => value,
                object?[] tuple when tuple.All(v => v is long) => tuple.Select(v => (long)v!).ToArray(),
                _ => null,
            };
            if (kept is not null) attributes[name] = kept;
        }
        return attributes;
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
        long or double => "a number",
        bool => "a boolean",
        _ => $"a {v.GetType().Name}",
    };
}

/// <summary>Weights found in a checkpoint: the named tensors, the top-level key they were under (null: the top level), the other keys holding weights.</summary>
internal sealed record FoundWeights(List<(string Name, PickleTensor Tensor)> Named, string? Key, IReadOnlyList<string> OtherKeys)
{
    /// <summary>A whole module's modules by name (the root ""), with their classes and attributes; empty for a state dict.</summary>
    public IReadOnlyDictionary<string, SavedModule> Modules { get; init; } = new Dictionary<string, SavedModule>();
}
