namespace RMNet.IO;

/// <summary>
/// Writes an output file through a temporary file in the same directory and a rename, so a failure leaves no
/// partial output, and refuses to overwrite the input or (without <c>overwrite</c>) an existing file.
/// </summary>
internal static class AtomicFile
{
    /// <summary>Checks that <paramref name="output"/> may be written; throws <see cref="ModelInputException"/> naming it otherwise.</summary>
    public static void CheckWritable(string output, bool overwrite, params string[] inputs)
    {
        string full = Path.GetFullPath(output);
        foreach (var input in inputs)
            if (string.Equals(RealPath(full), RealPath(input), StringComparison.Ordinal))
                throw new ModelInputException(output, "output path is the input file; choose another name");
        if (Directory.Exists(full)) throw new ModelInputException(output, "output path is a directory");
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir)) throw new ModelInputException(output, $"output directory {dir} does not exist");
        if (File.Exists(full) && !overwrite) throw new ModelInputException(output, "output exists; pass --force to overwrite it");
    }

    /// <summary>The absolute path with symbolic links followed to the file they name: a link to the input is the input.</summary>
    static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        try
        {
            return File.Exists(full) ? new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full : full;
        }
        catch (IOException)
        {
            return full;   // a link loop: not the input, and the write will fail on its own
        }
    }

    /// <summary>
    /// Writes with <paramref name="write"/> into a temporary file, then renames it to <paramref name="path"/>.
    /// The stream is also readable and seekable, so a writer may patch what it wrote. A cancelled
    /// <paramref name="cancellationToken"/> stops the next write to the stream (<see cref="StoppableStream"/>), and the
    /// temporary file is deleted.
    /// </summary>
    public static void Write(string path, Action<Stream> write, bool overwrite = true, CancellationToken cancellationToken = default)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        string temp = Path.Combine(dir, TemporaryNames.New(Path.GetFileName(full)));
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20))
            {
                if (cancellationToken.CanBeCanceled)
                    using (var stoppable = new StoppableStream(stream, cancellationToken))
                        write(stoppable);
                else
                    write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temp);
            throw new ModelInputException(path, $"cannot write: {e.Message}", e);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
