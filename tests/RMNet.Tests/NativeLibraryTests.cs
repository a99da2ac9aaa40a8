using Xunit;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>The build's native-library fix (build/RMNet.targets): TorchSharp loads, and only our output copy changed.</summary>
public class NativeLibraryTests
{
    [Fact]
    public void TorchSharpNativeLibraryLoadsAndComputes()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[] { 1, 2, 3 });
        Assert.Equal(14f, (x * x).sum().item<float>());
    }

    [CachedTorchSharpFact]
    public void OnlyTheOutputCopyIsPatchedAndOnlyWhereNeeded()
    {
        string output = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        var a = File.ReadAllBytes(output);
        var b = File.ReadAllBytes(CachedTorchSharp.NativeLibrary);
        Assert.Equal(b.Length, a.Length);
        int differing = Enumerable.Range(0, a.Length).Count(i => a[i] != b[i]);
        bool systemHasVersion = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" }
            .Where(File.Exists).Any(p => File.ReadAllText(p, System.Text.Encoding.Latin1).Contains("GLIBCXX_3.4.32\0"));
        // One flags byte (VER_FLG_WEAK on the GLIBCXX_3.4.32 need) where the system lacks the version; none otherwise.
        Assert.Equal(systemHasVersion ? 0 : 1, differing);
    }

    [Fact]
    public void TheTorchSharpVersionComesFromTheBuild()
    {
        // The managed assembly the tests run is the package's: its version is the one deps.json names.
        string informational = typeof(TorchSharp.torch).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        Assert.StartsWith(CachedTorchSharp.Version, informational);
        Assert.Contains(Path.Combine("torchsharp", CachedTorchSharp.Version), CachedTorchSharp.NativeLibrary);
    }
}
