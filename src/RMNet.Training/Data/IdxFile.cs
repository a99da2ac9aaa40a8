using System.IO.Compression;

namespace RMNet.Data;

/// <summary>
/// Reads IDX files (LeCun's MNIST format, also Fashion-MNIST's), raw or gzipped: a magic number giving the
/// element type and rank, big-endian dimension sizes, then the unsigned bytes.
/// </summary>
internal static class IdxFile
{
    /// <summary>The dimensions and bytes of an unsigned-byte IDX file.</summary>
    public static (int[] Shape, byte[] Data) Read(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
            var header = ReadExactly(stream, 4, path);
            if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] is 0 or > 4)
                throw new ModelInputException(path, "not an unsigned-byte IDX file (bad magic number)");
            var dims = ReadExactly(stream, 4 * header[3], path);
            var shape = Enumerable.Range(0, header[3]).Select(i => (dims[4 * i] << 24) | (dims[4 * i + 1] << 16) | (dims[4 * i + 2] << 8) | dims[4 * i + 3]).ToArray();
            long count = shape.Aggregate(1L, (a, d) => a * d);
            if (shape.Any(d => d <= 0) || count > int.MaxValue)
                throw new ModelInputException(path, $"IDX dimensions [{string.Join(", ", shape)}] are not a valid size");
            return (shape, ReadExactly(stream, (int)count, path));
        }
        catch (InvalidDataException e)
        {
            throw new ModelInputException(path, $"corrupt gzip data ({e.Message})");
        }
    }

    static byte[] ReadExactly(Stream stream, int count, string path)
    {
        var buffer = new byte[count];
        int read = 0;
        while (read < count)
        {
            int n = stream.Read(buffer, read, count - read);
            if (n == 0) throw new ModelInputException(path, $"truncated IDX file: expected {count} more bytes, found {read}");
            read += n;
        }
        return buffer;
    }
}
