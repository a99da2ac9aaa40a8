using System.Collections.Specialized;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace RMNet.IO;

/// <summary>Writes tensors as a PyTorch state dict (<c>torch.load</c> reads it; key order kept), atomically and reproducibly.</summary>
public static class StateDictFile
{
    /// <summary>Writes <paramref name="tensors"/> to <paramref name="path"/> in the order given.</summary>
    public static void Save(string path, IEnumerable<(string Name, Tensor Tensor)> tensors)
    {
        // An ordered table: a hash-ordered one would make the bytes differ from run to run.
        var table = new OrderedDictionary();
        foreach (var (name, t) in tensors) table[name] = t;
        AtomicFile.Write(path, s =>
        {
            PyTorchPickler.PickleStateDict(s, table, leaveOpen: true);
            ZipTimestamps.Normalize(s); // the same tensors give the same bytes
        });
    }

    /// <summary>Writes a module's parameters and buffers under their state-dict names.</summary>
    public static void Save(string path, nn.Module module) =>
        Save(path, module.state_dict().Select(kv => (kv.Key, kv.Value)));
}
