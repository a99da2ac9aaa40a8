namespace RMNet.IO;

/// <summary>File formats RMNet reads or writes.</summary>
internal enum FileFormat
{
    /// <summary>Not recognised.</summary>
    Unknown,
    /// <summary><c>torch.save</c> zip archive (.pth, .pt, .pth.tar).</summary>
    TorchZip,
    /// <summary>Pre-1.6 <c>torch.save</c> pickle stream (not supported: re-save with a current PyTorch).</summary>
    TorchLegacy,
    /// <summary>safetensors.</summary>
    Safetensors,
    /// <summary>ONNX protobuf.</summary>
    Onnx,
}

/// <summary>Recognises a file's format from its first bytes, falling back to the extension for ONNX.</summary>
internal static class FileFormats
{
    /// <summary>The format of <paramref name="path"/>; throws <see cref="ModelInputException"/> for missing, empty or unreadable files.</summary>
    public static FileFormat Detect(string path)
    {
        if (Directory.Exists(path)) throw new ModelInputException(path, "is a directory, not a model file");
        if (!File.Exists(path)) throw new ModelInputException(path, "file not found");
        byte[] head = new byte[16];
        int n;
        try
        {
            using var f = File.OpenRead(path);
            n = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelInputException(path, $"cannot read: {e.Message}", e);
        }
        if (n == 0) throw new ModelInputException(path, "file is empty");
        if (n >= 4 && head[0] == 0x50 && head[1] == 0x4b && head[2] == 0x03 && head[3] == 0x04) return FileFormat.TorchZip;
        if (n >= 2 && head[0] == 0x80 && head[1] <= 5) return FileFormat.TorchLegacy;
        if (n >= 9 && head[8] == (byte)'{') return FileFormat.Safetensors;
        if (path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) return FileFormat.Onnx;
        return FileFormat.Unknown;
    }

    /// <summary>Bytes of a model file plus its ONNX external data side file (<c>&lt;path&gt;.data</c>) where there is one.</summary>
    public static long ModelBytes(string path) =>
        new FileInfo(path).Length + (File.Exists(path + ".data") ? new FileInfo(path + ".data").Length : 0);

    /// <summary>The output format chosen by the file extension, or Unknown.</summary>
    public static FileFormat FromExtension(string path)
    {
        string p = path.ToLowerInvariant();
        if (p.EndsWith(".onnx")) return FileFormat.Onnx;
        if (p.EndsWith(".safetensors")) return FileFormat.Safetensors;
        if (p.EndsWith(".pth") || p.EndsWith(".pt") || p.EndsWith(".pth.tar")) return FileFormat.TorchZip;
        return FileFormat.Unknown;
    }
}
