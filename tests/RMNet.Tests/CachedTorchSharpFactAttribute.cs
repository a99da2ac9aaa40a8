using System.Reflection;
using System.Text.Json;
using Xunit;

namespace RMNet.Tests;

/// <summary>
/// A fact about the TorchSharp package the build used, in the NuGet cache the build restored into: run on Linux where
/// that package is there, reported as skipped with the reason elsewhere (not passed without checking anything).
/// </summary>
public sealed class CachedTorchSharpFactAttribute : FactAttribute
{
    /// <summary>Skips, with the reason, where <see cref="CachedTorchSharp.NativeLibrary"/> cannot be found.</summary>
    public CachedTorchSharpFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "the native-library patch applies to Linux only";
        else if (CachedTorchSharp.Missing is string reason) Skip = reason;
    }
}

/// <summary>The build's TorchSharp package: its version and folder from the tests' deps.json, the cache from the build's NuGetPackageRoot.</summary>
public static class CachedTorchSharp
{
    static readonly (string Version, string Folder) Package = Read();

    /// <summary>The TorchSharp version the build resolved.</summary>
    public static string Version => Package.Version;

    /// <summary>The package's own libLibTorchSharp.so in the NuGet cache.</summary>
    public static string NativeLibrary => Path.Combine(Package.Folder, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    /// <summary>Why <see cref="NativeLibrary"/> is not there, or null where it is.</summary>
    public static string? Missing => File.Exists(NativeLibrary) ? null
        : $"TorchSharp {Version}'s package is not in the NuGet cache the build used ({NativeLibrary} is missing)";

    static (string, string) Read()
    {
        string root = typeof(CachedTorchSharp).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "NuGetPackageRoot").Value ?? "";
        using var deps = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "RMNet.Tests.deps.json")));
        var library = deps.RootElement.GetProperty("libraries").EnumerateObject().Single(p => p.Name.StartsWith("TorchSharp/", StringComparison.Ordinal));
        return (library.Name["TorchSharp/".Length..], Path.Combine(root, library.Value.GetProperty("path").GetString()!));
    }
}
