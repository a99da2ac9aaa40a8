using System.Text;

namespace RMNet.IO;

/// <summary>
/// Walks a pickle's opcodes without executing or constructing anything, before TorchSharp.PyBridge unpickles it:
/// every global it names must be on an allow-list (tensor rebuilding, OrderedDict, common checkpoint
/// metadata), and every tensor storage it declares must fit inside the archive entry that holds its bytes.
/// So a pickle that asks for <c>os.system</c> is refused by name, and one that declares 10^12 elements is
/// refused before anything is allocated.
/// </summary>
public static class PickleScanner
{
    /// <summary>Globals a PyTorch checkpoint may name.</summary>
    public static IReadOnlySet<string> AllowedGlobals { get; } = new HashSet<string>
    {
        "collections.OrderedDict", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter", "torch.FloatStorage", "torch.DoubleStorage", "torch.HalfStorage",
        "torch.BFloat16Storage", "torch.LongStorage", "torch.IntStorage", "torch.ShortStorage", "torch.CharStorage",
        "torch.ByteStorage", "torch.BoolStorage", "argparse.Namespace", "numpy.core.multiarray.scalar", "numpy.dtype",
        "builtins.set", "builtins.frozenset", "builtins.slice", "torch.device",
        // Protocol 2 (torch.save's default) writes Python 2 names for builtins.
        "__builtin__.set", "__builtin__.frozenset", "__builtin__.slice",
    };

    static readonly Dictionary<string, int> StorageElementSize = new()
    {
        ["FloatStorage"] = 4, ["DoubleStorage"] = 8, ["HalfStorage"] = 2, ["BFloat16Storage"] = 2, ["LongStorage"] = 8,
        ["IntStorage"] = 4, ["ShortStorage"] = 2, ["CharStorage"] = 1, ["ByteStorage"] = 1, ["BoolStorage"] = 1,
    };

    sealed record Global(string Module, string Name)
    {
        public override string ToString() => $"{Module}.{Name}";
    }

    sealed class Mark { public static readonly Mark Instance = new(); }

    sealed class Opaque { public static readonly Opaque Instance = new(); }

    /// <summary>
    /// Checks <paramref name="pickle"/>; <paramref name="entrySize"/> gives the byte size of an archive storage entry
    /// by key (null where absent). Throws <see cref="ModelInputException"/> naming <paramref name="file"/>.
    /// </summary>
    public static void Check(byte[] pickle, Func<string, long?> entrySize, string file)
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
        void CheckGlobal(Global g)
        {
            if (!AllowedGlobals.Contains(g.ToString()))
                throw Bad(file, $"pickle asks for global '{g}', refused: only tensor data and plain checkpoint metadata are loaded");
        }
        void CheckStorage(object? pid)
        {
            if (pid is not object?[] t || t.Length < 5 || t[0] as string != "storage") throw Bad(file, "unknown persistent id in pickle");
            if (t[1] is not Global g || !StorageElementSize.TryGetValue(g.Name, out int elementSize)) throw Bad(file, "unknown tensor storage type in pickle");
            if (t[2] is not string key || t[4] is not long count) throw Bad(file, "malformed tensor storage record in pickle");
            long? size = entrySize(key);
            if (size is null) throw Bad(file, $"tensor storage '{key}' has no data entry in the archive");
            if (count < 0 || count > size / elementSize)
                throw Bad(file, $"tensor storage '{key}' declares {count} elements of {elementSize} bytes but its data entry holds {size} bytes");
        }

        while (true)
        {
            if (pos >= pickle.Length) throw Bad(file, "pickle ends without STOP");
            byte op = pickle[pos++];
            switch ((char)op)
            {
                case '.': return; // STOP
                case '\x80': Take(1); break; // PROTO
                case '\x95': Take(8); break; // FRAME
                case '(': stack.Add(Mark.Instance); break;
                case '0': Pop(); break;
                case '1': PopToMark(); break;
                case '2': stack.Add(stack.Count > 0 ? stack[^1] : throw Bad(file, "pickle stack underflow")); break;
                case 'N': case '\x88': case '\x89': stack.Add(Opaque.Instance); break;
                case 'F': Line(); stack.Add(Opaque.Instance); break;
                case 'I': case 'L': stack.Add(long.TryParse(Line().TrimEnd('L'), out var li) ? li : Opaque.Instance); break;
                case 'J': stack.Add((long)(int)U(4)); break;
                case 'K': stack.Add(U(1)); break;
                case 'M': stack.Add(U(2)); break;
                case 'G': Take(8); stack.Add(Opaque.Instance); break; // BINFLOAT
                case '\x8a': { var b = Take(U(1)); stack.Add(LongFrom(b)); break; }
                case '\x8b': { long n = U(4); var b = Take(n); stack.Add(LongFrom(b)); break; }
                case 'S': case 'V': stack.Add(Line().Trim('\'', '"')); break;
                case 'T': case 'X': stack.Add(Encoding.UTF8.GetString(Take(U(4)))); break;
                case 'U': case '\x8c': stack.Add(Encoding.UTF8.GetString(Take(U(1)))); break;
                case '\x8d': stack.Add(Encoding.UTF8.GetString(Take(U(8)))); break;
                case 'B': Take(U(4)); stack.Add(Opaque.Instance); break;
                case 'C': Take(U(1)); stack.Add(Opaque.Instance); break;
                case '\x8e': case '\x96': Take(U(8)); stack.Add(Opaque.Instance); break;
                case ']': case '}': case ')': case '\x8f': stack.Add(Opaque.Instance); break;
                case 'a': Pop(); break;
                case 'e': case 'u': case '\x90': PopToMark(); break;
                case 'l': case 'd': case '\x91': PopToMark(); stack.Add(Opaque.Instance); break;
                case 's': Pop(); Pop(); break;
                case 't': stack.Add(PopToMark().ToArray()); break;
                case '\x85': stack.Add(new[] { Pop() }); break;
                case '\x86': { var b = Pop(); var a = Pop(); stack.Add(new[] { a, b }); break; }
                case '\x87': { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new[] { a, b, c }); break; }
                case 'g': stack.Add(memo.GetValueOrDefault(long.TryParse(Line(), out var gi) ? gi : -1, Opaque.Instance)); break;
                case 'h': stack.Add(memo.GetValueOrDefault(U(1), Opaque.Instance)); break;
                case 'j': stack.Add(memo.GetValueOrDefault(U(4), Opaque.Instance)); break;
                case 'p': memo[long.TryParse(Line(), out var pi) ? pi : -1] = Peek(stack, file); break;
                case 'q': memo[U(1)] = Peek(stack, file); break;
                case 'r': memo[U(4)] = Peek(stack, file); break;
                case '\x94': memo[memo.Count] = Peek(stack, file); break;
                case 'c': { var g = new Global(Line(), Line()); CheckGlobal(g); stack.Add(g); break; }
                case '\x93':
                {
                    var name = Pop() as string;
                    var module = Pop() as string;
                    if (name is null || module is null) throw Bad(file, "pickle STACK_GLOBAL with a computed name, refused");
                    var g = new Global(module, name);
                    CheckGlobal(g);
                    stack.Add(g);
                    break;
                }
                case 'i': { var g = new Global(Line(), Line()); CheckGlobal(g); PopToMark(); stack.Add(Opaque.Instance); break; }
                case 'o': PopToMark(); stack.Add(Opaque.Instance); break;
                case 'R': Pop(); Pop(); stack.Add(Opaque.Instance); break;
                case 'b': Pop(); break;
                case '\x81': Pop(); Pop(); stack.Add(Opaque.Instance); break;
                case '\x92': Pop(); Pop(); Pop(); stack.Add(Opaque.Instance); break;
                case 'Q': CheckStorage(Pop()); stack.Add(Opaque.Instance); break;
                case 'P': throw Bad(file, "pickle text persistent id, refused");
                case '\x82': case '\x83': case '\x84': throw Bad(file, "pickle extension-registry opcode, refused");
                default: throw Bad(file, $"unknown pickle opcode 0x{op:x2} at byte {pos - 1}");
            }
        }
    }

    static object? Peek(List<object?> stack, string file) => stack.Count > 0 ? stack[^1] : throw Bad(file, "pickle stack underflow");

    static object LongFrom(byte[] littleEndian) =>
        littleEndian.Length <= 8 ? (object)(long)new System.Numerics.BigInteger(littleEndian) : Opaque.Instance;

    static ModelInputException Bad(string file, string message) => new(file, message);
}
