using System.Collections;
using RMNet.IO;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>Paths and reference data made by tools/fixtures/make_fixtures.py with Debian's PyTorch.</summary>
public static class Fixture
{
    public static string Dir => Path.Combine(AppContext.BaseDirectory, "Fixtures");

    public static string Path_(string name) => Path.Combine(Dir, name);

    public static readonly string[] SmallNets = { "basic_narrow", "bottleneck_narrow", "resnext_narrow", "wide_narrow", "cifar_narrow", "cifar_pruned" };

    /// <summary>1,000 training and 500 test images of Fashion-MNIST in the IDX format of Debian's package.</summary>
    public static string FashionSubset => Path_("fashion_subset");

    /// <summary>PyTorch's inputs and outputs for a fixture net (keys input, output, input_odd, output_odd).</summary>
    public static Dictionary<string, Tensor> Io(string name)
    {
        using var f = File.OpenRead(Path_($"{name}.io.pth"));
        Hashtable table = PyTorchUnpickler.UnpickleStateDict(f);
        return table.Keys.Cast<string>().ToDictionary(k => k, k => (Tensor)table[k]!);
    }

    /// <summary>Theory data: every fixture net with every mode.</summary>
    public static IEnumerable<object[]> Cases<TMode>(string[] nets, params TMode[] modes) =>
        from net in nets from mode in modes select new object[] { net, mode! };

    /// <summary>A fresh temporary directory, removed by the caller's using.</summary>
    public static TempDir Temp() => new();
}

public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("rmnet-test-").FullName;
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}

/// <summary>
/// Tests that train networks run on their own, after the others: they load both cores for seconds, and other
/// tests' timing-free checks (byte-identical outputs) should not share libtorch's thread pool with them.
/// </summary>
[Xunit.CollectionDefinition("Training", DisableParallelization = true)]
public sealed class TrainingCollection;
