using RMNet.IO;

namespace RMNet.Cli;

/// <summary>
/// A private folder in the system's temporary directory for files a command needs only while it runs (the models a
/// benchmark writes, a lowered checkpoint's original graph for verification), removed afterwards, or by a later run
/// where this one was killed (its name carries the process, see <see cref="TemporaryNames"/>).
/// </summary>
internal sealed class TempFolder(string purpose) : IDisposable
{
    readonly string _path = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), TemporaryNames.New(purpose))).FullName;

    /// <summary>The path of <paramref name="name"/> in the folder.</summary>
    public string File(string name) => Path.Combine(_path, name);

    /// <inheritdoc />
    public void Dispose()
    {
        try { Directory.Delete(_path, true); } catch (IOException) { }
    }
}
