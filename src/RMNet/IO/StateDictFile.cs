using System.Collections.Specialized;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace RMNet.IO;

/// <summary>Writes tensors as a PyTorch state dict (<c>torch.load</c> reads it; key order kept), atomically and reproducibly.</summary>
public static class StateDictFile
{
    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> in the order given. With <paramref name="strings"/>
    /// the file is a dict of those strings plus the tensors under <c>state_dict</c> (as a training checkpoint keeps
    /// them), which <c>torch.load(weights_only=True)</c> still accepts.
    /// </summary>
    public static void Save(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? strings = null) =>
        Save(path, tensors, strings, CancellationToken.None);

    /// <summary>As <see cref="Save(string, IEnumerable{ValueTuple{string, Tensor}}, IReadOnlyDictionary{string, string}?)"/>, stopped mid-write (the partial file deleted) when <paramref name="cancellationToken"/> is cancelled.</summary>
    internal static void Save(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? strings, CancellationToken cancellationToken)
    {
        // Ordered tables: a hash-ordered one would make the bytes differ from run to run.
        var weights = new OrderedDictionary();
        foreach (var (name, t) in tensors) weights[name] = t;
        var table = weights;
        if (strings is not null)
        {
            table = new OrderedDictionary();
            foreach (var (key, value) in strings) table[key] = value;
            table["state_dict"] = weights;
        }
        AtomicFile.Write(path, s =>
        {
            PyTorchPickler.PickleStateDict(s, table, leaveOpen: true);
            ZipTimestamps.Normalize(s); // the same tensors give the same bytes
        }, cancellationToken: cancellationToken);
    }

    /// <summary>Writes a module's parameters and buffers under their state-dict names.</summary>
    internal static void Save(string path, nn.Module module) =>
        Save(path, module.state_dict().Select(kv => (kv.Key, kv.Value)));
}
