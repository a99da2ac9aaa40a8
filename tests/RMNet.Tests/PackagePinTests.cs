using System.Xml.Linq;
using Xunit;

namespace RMNet.Tests;

/// <summary>Directory.Packages.props pins what the projects use, and nothing else.</summary>
public class PackagePinTests
{
    [Fact]
    public void EveryPinnedPackageIsReferencedByAProject()
    {
        string root = RepositoryRoot();
        var pinned = XDocument.Load(Path.Combine(root, "Directory.Packages.props")).Descendants("PackageVersion").Select(e => (string)e.Attribute("Include")!);
        var referenced = Directory.EnumerateFiles(root, "*.csproj", SearchOption.AllDirectories)
            .Where(p => !p.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj"))
            .SelectMany(p => XDocument.Load(p).Descendants("PackageReference").Select(e => (string)e.Attribute("Include")!))
            .ToHashSet();
        Assert.Equal(Array.Empty<string>(), pinned.Where(p => !referenced.Contains(p)).ToArray());
    }

    /// <summary>The checkout the tests were built from: the first folder above the test binaries holding RMNet.sln.</summary>
    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "RMNet.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no RMNet.sln above {AppContext.BaseDirectory}");
    }
}
