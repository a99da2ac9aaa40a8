namespace RMNet.IO;

/// <summary>
/// An output written first under a temporary name in the target directory (same extension, so readers that
/// go by extension work on it), checked, and only then renamed into place. Disposing without
/// <see cref="Commit"/> deletes the temporary file, so a failed or rejected conversion leaves nothing behind.
/// </summary>
public sealed class PendingOutput : IDisposable
{
    bool _committed;

    /// <summary>Checks that <paramref name="path"/> may be written (see <see cref="AtomicFile.CheckWritable"/>) and reserves a temporary name.</summary>
    public PendingOutput(string path, bool overwrite, params string[] inputs)
    {
        AtomicFile.CheckWritable(path, overwrite, inputs);
        FinalPath = Path.GetFullPath(path);
        Overwrite = overwrite;
        TempPath = Path.Combine(Path.GetDirectoryName(FinalPath)!, $".rmnet-{Environment.ProcessId}-{Path.GetFileName(FinalPath)}");
        // Find out now, before minutes of work, whether the directory takes a file at all.
        try
        {
            using (new FileStream(TempPath, FileMode.CreateNew, FileAccess.Write)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelInputException(path, $"cannot write in {Path.GetDirectoryName(FinalPath)}: {e.Message}", e);
        }
    }

    /// <summary>Where the output ends up.</summary>
    public string FinalPath { get; }

    /// <summary>Where to write it first.</summary>
    public string TempPath { get; }

    bool Overwrite { get; }

    /// <summary>Renames the temporary file into place.</summary>
    public void Commit()
    {
        try
        {
            File.Move(TempPath, FinalPath, Overwrite);
        }
        catch (IOException e)
        {
            throw new ModelInputException(FinalPath, $"cannot write: {e.Message}", e);
        }
        _committed = true;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_committed) return;
        try { File.Delete(TempPath); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
