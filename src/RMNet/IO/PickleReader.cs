using System.Text;

namespace RMNet.IO;

/// <summary>
/// Reads a <c>torch.save</c> pickle into inert values without executing anything: dicts, lists, tuples, strings,
/// numbers, <see cref="PickleTensor"/>s, and <see cref="PickleObject"/> records for objects of any class (a
/// whole <c>torch.save(model)</c> module becomes records holding its <c>_parameters</c>, <c>_buffers</c> and
/// <c>_modules</c>; a TorchScript archive's <c>__torch__</c> objects hold their attributes).
/// A <em>call</em> (REDUCE, INST, OBJ) is accepted only for allow-listed callables (tensor rebuilding,
/// OrderedDict, common checkpoint metadata), so a pickle that asks for <c>os.system</c> is refused by name; and
/// every tensor storage must fit inside the archive entry that holds its bytes, so one that declares 10^12
/// elements is refused before anything is allocated.
/// </summary>
internal static class PickleReader
{
    /// <summary>Callables a PyTorch checkpoint may call; none of them is run, each is read as what it would build.</summary>
    public static IReadOnlySet<string> AllowedGlobals { get; } = new HashSet<string>
    {
        "collections.OrderedDict", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
        "argparse.Namespace", "numpy.dtype", PickleNumpy.Encode,
        "builtins.set", "builtins.frozenset", "builtins.slice", "torch.device", "torch.Size", "copyreg._reconstructor",
        // Protocol 2 (torch.save's default) writes Python 2 names for builtins.
        "__builtin__.set", "__builtin__.frozenset", "__builtin__.slice", "copy_reg._reconstructor",
        // TorchScript archives wrap typed lists in these; each returns its argument.
        "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_doublelist", "torch.jit._pickle.build_boollist",
        "torch.jit._pickle.build_tensorlist", "torch.jit._pickle.build_genericlist",
    }.Concat(PickleNumpy.ScalarNames).Concat(PickleNumpy.ReconstructNames).ToHashSet();

    /// <summary>Bytes per element of each tensor storage type.</summary>
    public static IReadOnlyDictionary<string, int> StorageElementSize { get; } = new Dictionary<string, int>
    {
        ["FloatStorage"] = 4, ["DoubleStorage"] = 8, ["HalfStorage"] = 2, ["BFloat16Storage"] = 2, ["LongStorage"] = 8,
        ["IntStorage"] = 4, ["ShortStorage"] = 2, ["CharStorage"] = 1, ["ByteStorage"] = 1, ["BoolStorage"] = 1,
    };

    sealed class Mark { public static readonly Mark Instance = new(); }

    /// <summary>
    /// Reads <paramref name="pickle"/>; <paramref name="entrySize"/> gives the byte size of an archive storage entry
    /// by key (null where absent). Throws <see cref="ModelInputException"/> naming <paramref name="file"/>.
    /// </summary>
    public static object? Read(byte[] pickle, Func<string, long?> entrySize, string file)
    {
        var stack = new List<object?>();
        var memo = new Dictionary<long, object?>();
        int pos = 0;
        object? Pop()
        {
            if (stack.Count == 0) throw Bad(file, "pickle stack underflow");
            var v = stack[^1];
            stack.RemoveAt(stack.Count - 1);
            return v;
        }
        object? Peek() => stack.Count > 0 ? stack[^1] : throw Bad(file, "pickle stack underflow");
        List<object?> PopToMark()
        {
            int i = stack.FindLastIndex(v => v is Mark);
            if (i < 0) throw Bad(file, "pickle MARK missing");
            var items = stack.GetRange(i + 1, stack.Count - i - 1);
            stack.RemoveRange(i, stack.Count - i);
            return items;
        }
        byte[] Take(long n)
        {
            if (n < 0 || pos + n > pickle.Length) throw Bad(file, "pickle truncated");
            var b = pickle.AsSpan(pos, (int)n).ToArray();
            pos += (int)n;
            return b;
        }
        long U(int n) { var b = Take(n); long v = 0; for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i]; return v; }
        string Line()
        {
            int end = Array.IndexOf(pickle, (byte)'\n', pos);
            if (end < 0) throw Bad(file, "pickle truncated");
            var s = Encoding.UTF8.GetString(pickle, pos, end - pos);
            pos = end + 1;
            return s;
        }
        object? Call(object? callable, object?[] args) => callable switch
        {
            PickleGlobal g when AllowedGlobals.Contains(g.ToString()) => Build(g, args, file),
            PickleGlobal g => throw Bad(file, $"pickle asks for global '{g}', refused: only tensor data, plain checkpoint metadata and module records are loaded"
                + PickledWeights.ReSave),
            _ => throw Bad(file, "pickle calls an object that is not a named global, refused"),
        };
        PickleStorage Storage(object? pid)
        {
            if (pid is not object?[] t || t.Length < 5 || t[0] as string != "storage") throw Bad(file, "unknown persistent id in pickle");
            if (t[1] is not PickleGlobal g || g.Module != "torch" || !StorageElementSize.TryGetValue(g.Name, out int elementSize))
                throw Bad(file, "unknown tensor storage type in pickle");
            if (t[2] is not string key || t[4] is not long count) throw Bad(file, "malformed tensor storage record in pickle");
            long? size = entrySize(key);
            if (size is null) throw Bad(file, $"tensor storage '{key}' has no data entry in the archive");
            if (count < 0 || count > size / elementSize)
                throw Bad(file, $"tensor storage '{key}' declares {count} elements of {elementSize} bytes but its data entry holds {size} bytes");
            return new PickleStorage(key, g.Name, count);
        }
        void SetItems(object? target, List<object?> items)
        {
            if (items.Count % 2 != 0) throw Bad(file, "pickle SETITEMS with an odd number of items");
            var dict = target as PickleDict ?? throw Bad(file, "pickle SETITEMS on something that is not a dict");
            for (int i = 0; i < items.Count; i += 2) dict.Set(items[i], items[i + 1]);
        }
        void Append(object? target, IEnumerable<object?> items)
        {
            if (target is not List<object?> list) throw Bad(file, "pickle APPENDS on something that is not a list");
            list.AddRange(items);
        }

        while (true)
        {
            if (pos >= pickle.Length) throw Bad(file, "pickle ends without STOP");
            byte op = pickle[pos++];
            switch ((char)op)
            {
                case '.': return Pop() is var top && top is not Mark ? top : throw Bad(file, "pickle STOP on a MARK"); // as Python: the top of the stack
                case '\x80': Take(1); break; // PROTO
                case '\x95': Take(8); break; // FRAME
                case '(': stack.Add(Mark.Instance); break;
                case '0': Pop(); break;
                case '1': PopToMark(); break;
                case '2': stack.Add(Peek()); break;
                case 'N': stack.Add(null); break;
                case '\x88': stack.Add(true); break;
                case '\x89': stack.Add(false); break;
                case 'F': stack.Add(double.TryParse(Line(), System.Globalization.CultureInfo.InvariantCulture, out var f) ? f : double.NaN); break;
                case 'I':
                {
                    string s = Line();
                    stack.Add(s == "01" ? true : s == "00" ? false : long.TryParse(s, out var li) ? li : null);
                    break;
                }
                case 'L': stack.Add(long.TryParse(Line().TrimEnd('L'), out var ll) ? ll : null); break;
                case 'J': stack.Add((long)(int)U(4)); break;
                case 'K': stack.Add(U(1)); break;
                case 'M': stack.Add(U(2)); break;
                case 'G': stack.Add(BitConverter.Int64BitsToDouble(System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(Take(8)))); break;
                case '\x8a': stack.Add(LongFrom(Take(U(1)))); break;
                case '\x8b': stack.Add(LongFrom(Take(U(4)))); break;
                case 'S': case 'V': stack.Add(Line().Trim('\'', '"')); break;
                case 'T': case 'X': stack.Add(Encoding.UTF8.GetString(Take(U(4)))); break;
                case 'U': case '\x8c': stack.Add(Encoding.UTF8.GetString(Take(U(1)))); break;
                case '\x8d': stack.Add(Encoding.UTF8.GetString(Take(U(8)))); break;
                case 'B': stack.Add(Take(U(4))); break;
                case 'C': stack.Add(Take(U(1))); break;
                case '\x8e': case '\x96': stack.Add(Take(U(8))); break;
                case ']': case '\x8f': stack.Add(new List<object?>()); break; // EMPTY_LIST, EMPTY_SET (a set kept as a list)
                case '}': stack.Add(new PickleDict()); break;
                case ')': stack.Add(Array.Empty<object?>()); break;
                case 'a': { var v = Pop(); Append(Peek(), new[] { v }); break; }
                case 'e': case '\x90': { var items = PopToMark(); Append(Peek(), items); break; }
                case 'l': stack.Add(PopToMark()); break;
                case '\x91': stack.Add(PopToMark()); break; // FROZENSET
                case 'd': { var items = PopToMark(); var d = new PickleDict(); SetItems(d, items); stack.Add(d); break; }
                case 's': { var v = Pop(); var k = Pop(); SetItems(Peek(), new List<object?> { k, v }); break; }
                case 'u': { var items = PopToMark(); SetItems(Peek(), items); break; }
                case 't': stack.Add(PopToMark().ToArray()); break;
                case '\x85': stack.Add(new[] { Pop() }); break;
                case '\x86': { var b = Pop(); var a = Pop(); stack.Add(new[] { a, b }); break; }
                case '\x87': { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new[] { a, b, c }); break; }
                case 'g': stack.Add(memo.TryGetValue(long.TryParse(Line(), out var gi) ? gi : -1, out var gv) ? gv : throw Bad(file, "pickle GET of a missing memo entry")); break;
                case 'h': stack.Add(memo.TryGetValue(U(1), out var hv) ? hv : throw Bad(file, "pickle GET of a missing memo entry")); break;
                case 'j': stack.Add(memo.TryGetValue(U(4), out var jv) ? jv : throw Bad(file, "pickle GET of a missing memo entry")); break;
                case 'p': memo[long.TryParse(Line(), out var pi) ? pi : -1] = Peek(); break;
                case 'q': memo[U(1)] = Peek(); break;
                case 'r': memo[U(4)] = Peek(); break;
                case '\x94': memo[memo.Count] = Peek(); break;
                case 'c': stack.Add(new PickleGlobal(Line(), Line())); break;
                case '\x93':
                {
                    var name = Pop() as string;
                    var module = Pop() as string;
                    if (name is null || module is null) throw Bad(file, "pickle STACK_GLOBAL with a computed name, refused");
                    stack.Add(new PickleGlobal(module, name));
                    break;
                }
                case 'i': { var g = new PickleGlobal(Line(), Line()); stack.Add(Call(g, PopToMark().ToArray())); break; }
                case 'o': { var items = PopToMark(); if (items.Count == 0) throw Bad(file, "pickle OBJ without a class"); stack.Add(Call(items[0], items.Skip(1).ToArray())); break; }
                case 'R': { var args = Pop() as object?[] ?? throw Bad(file, "pickle REDUCE without an argument tuple"); stack.Add(Call(Pop(), args)); break; }
                case '\x81': { var args = Pop(); stack.Add(New(Pop(), args as object?[] ?? Array.Empty<object?>(), file)); break; }
                case '\x92': { Pop(); var args = Pop(); stack.Add(New(Pop(), args as object?[] ?? Array.Empty<object?>(), file)); break; }
                case 'b': { var state = Pop(); if (Peek() is PickleObject o) o.State = state; break; }
                case 'Q': stack.Add(Storage(Pop())); break;
                case 'P': throw Bad(file, "pickle text persistent id, refused");
                case '\x82': case '\x83': case '\x84': throw Bad(file, "pickle extension-registry opcode, refused");
                default: throw Bad(file, $"unknown pickle opcode 0x{op:x2} at byte {pos - 1}");
            }
        }
    }

    /// <summary>
    /// NEWOBJ: <c>cls.__new__(cls, *args)</c>, which makes an empty instance without running any code of the
    /// class; here it makes an inert record (or an empty dict for OrderedDict).
    /// </summary>
    static object New(object? type, object?[] args, string file) => type switch
    {
        PickleGlobal { Module: "collections", Name: "OrderedDict" } => new PickleDict(),
        PickleGlobal g => new PickleObject(g, args),
        _ => throw Bad(file, "pickle NEWOBJ of something that is not a named class, refused"),
    };

    /// <summary>What an allow-listed callable would build from <paramref name="args"/>, built inertly.</summary>
    static object? Build(PickleGlobal g, object?[] args, string file)
    {
        switch (g.ToString())
        {
            case "collections.OrderedDict":
            {
                var d = new PickleDict();
                if (args.Length > 0 && args[0] is List<object?> pairs)
                    foreach (var pair in pairs)
                        if (pair is object?[] { Length: 2 } kv) d.Set(kv[0], kv[1]);
                        else if (pair is List<object?> { Count: 2 } kl) d.Set(kl[0], kl[1]);
                return d;
            }
            case "torch._utils._rebuild_tensor" or "torch._utils._rebuild_tensor_v2":
                if (args.Length < 4 || args[0] is not PickleStorage storage || args[1] is not long offset
                    || Longs(args[2]) is not long[] shape || Longs(args[3]) is not long[] stride || shape.Length != stride.Length)
                    throw Bad(file, "malformed tensor record in pickle");
                return new PickleTensor(storage, offset, shape, stride);
            case "torch._utils._rebuild_parameter" or "torch._utils._rebuild_parameter_with_state":
                return args.Length > 0 && args[0] is PickleTensor t ? t : throw Bad(file, "malformed parameter record in pickle");
            case "torch.Size" or "torch.jit._pickle.build_intlist" or "torch.jit._pickle.build_doublelist" or "torch.jit._pickle.build_boollist"
                or "torch.jit._pickle.build_tensorlist" or "torch.jit._pickle.build_genericlist":
                return args.Length > 0 ? args[0] : null;
            case PickleNumpy.Encode:
                return PickleNumpy.EncodeLatin1(args, file);
            case var name when PickleNumpy.ScalarNames.Contains(name):
                return PickleNumpy.ScalarValue(g, args);
            case var name when PickleNumpy.ReconstructNames.Contains(name):
                return PickleNumpy.ReconstructArray(g, args, file);
            case "copyreg._reconstructor" or "copy_reg._reconstructor":
                return args.Length > 0 && args[0] is PickleGlobal cls ? new PickleObject(cls, Array.Empty<object?>()) : throw Bad(file, "malformed object record in pickle");
            default:
                return new PickleObject(g, args);
        }
    }

    static long[]? Longs(object? v) => v switch
    {
        object?[] a when a.All(x => x is long) => a.Select(x => (long)x!).ToArray(),
        List<object?> l when l.All(x => x is long) => l.Select(x => (long)x!).ToArray(),
        _ => null,
    };

    static object? LongFrom(byte[] littleEndian) =>
        littleEndian.Length <= 8 ? (long)new System.Numerics.BigInteger(littleEndian) : null;

    static ModelInputException Bad(string file, string message) => new(file, message);
}
