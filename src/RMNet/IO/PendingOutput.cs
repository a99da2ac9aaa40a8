namespace RMNet.IO;

/// <summary>
/// An output written first into a private temporary directory beside the target (under its final file name,
/// so side files such as ONNX external data can refer to it by name), checked, and only then moved into
/// place. Disposing without <see cref="Commit"/> deletes everything written, so a failed, rejected or cancelled
/// conversion leaves nothing behind; the directory's name (<see cref="TemporaryNames"/>) lets a later run remove
/// it where the process was killed outright.
/// </summary>
internal sealed class PendingOutput : IDisposable
{
    readonly string _tempDir;
    readonly bool _overwrite;
    bool _committed;

    /// <summary>Checks that <paramref name="path"/> may be written (see <see cref="AtomicFile.CheckWritable"/>) and makes the temporary directory.</summary>
    public PendingOutput(string path, bool overwrite, params string[] inputs)
    {
        AtomicFile.CheckWritable(path, overwrite, inputs);
        FinalPath = Path.GetFullPath(path);
        _overwrite = overwrite;
        string dir = Path.GetDirectoryName(FinalPath)!;
        _tempDir = Path.Combine(dir, TemporaryNames.New());
        // Find out now, before minutes of work, whether the directory takes a file at all.
        try
        {
            Directory.CreateDirectory(_tempDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelInputException(path, $"cannot write in {dir}: {e.Message}", e);
        }
        TempPath = Path.Combine(_tempDir, Path.GetFileName(FinalPath));
    }

    /// <summary>Where the output ends up.</summary>
    public string FinalPath { get; }

    /// <summary>Where to write it first (same file name, private directory).</summary>
    public string TempPath { get; }

    /// <summary>Moves the written file, and any side files written beside it, into place.</summary>
    public void Commit()
    {
        string dir = Path.GetDirectoryName(FinalPath)!;
        try
        {
            // Side files first, the main file last: a reader never sees the model without its data.
            foreach (var file in Directory.GetFiles(_tempDir).Where(f => f != TempPath))
                File.Move(file, Path.Combine(dir, Path.GetFileName(file)), _overwrite);
            File.Move(TempPath, FinalPath, _overwrite);
            _committed = true;
        }
        catch (IOException e)
        {
            throw new ModelInputException(FinalPath, $"cannot write: {e.Message}", e);
        }
        Dispose();
    }

    /// <summary>Deletes the temporary directory and what is in it (after <see cref="Commit"/>: nothing).</summary>
    /// <remarks>
    /// An uncommitted output is deleted on a worker thread while this thread hands the memory the command freed back
    /// to the system (<see cref="NativeHeap.Trim"/>): deleting gigabytes takes over half a second, and so does unmapping
    /// memory in the process's exit, which a stopped command reaches next; the two then overlap instead of adding up.
    /// </remarks>
    public void Dispose()
    {
        if (_committed)
        {
            DeleteTemporaries();
            return;
        }
        var deleting = Task.Run(DeleteTemporaries);
        NativeHeap.Trim();
        deleting.Wait();
    }

    void DeleteTemporaries()
    {
        try { Directory.Delete(_tempDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
