namespace RMNet.IO;

/// <summary>
/// What numpy values in a checkpoint's metadata (<c>np.int64(3)</c>, <c>np.float32(0.1)</c>, small arrays) become,
/// without numpy or Python: pickle protocol 2 (<c>torch.save</c>'s) writes their bytes as
/// <c>_codecs.encode(text, 'latin1')</c>, evaluated here as latin-1 encoding and nothing else; a scalar becomes
/// its value (long, double or bool) where its dtype is a plain number, else an inert record; an array stays an
/// inert <c>numpy.ndarray</c> record (its shape, dtype and bytes are its BUILD state, never interpreted).
/// </summary>
static class PickleNumpy
{
    /// <summary>Names of numpy's scalar and array rebuilders: numpy 1.x (<c>numpy.core</c>) and 2.x (<c>numpy._core</c>).</summary>
    public static readonly string[] ScalarNames = { "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar" };

    /// <inheritdoc cref="ScalarNames"/>
    public static readonly string[] ReconstructNames = { "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct" };

    /// <summary>The codec call protocol 2 writes for bytes.</summary>
    public const string Encode = "_codecs.encode";

    static readonly HashSet<string> Latin1 = new(StringComparer.OrdinalIgnoreCase) { "latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1" };

    /// <summary><c>_codecs.encode(text, encoding)</c> for latin-1 only: each character's code (0-255) as a byte.</summary>
    public static byte[] EncodeLatin1(object?[] args, string file)
    {
        if (args is not [string text, string encoding, ..] || args.Length > 3)
            throw new ModelInputException(file, "pickle calls _codecs.encode without a string and an encoding, refused");
        if (!Latin1.Contains(encoding))
            throw new ModelInputException(file, $"pickle calls _codecs.encode with encoding '{encoding}', refused: only latin-1 (how protocol 2 writes bytes) is evaluated");
        var bytes = new byte[text.Length];
        for (int i = 0; i < text.Length; i++)
            bytes[i] = text[i] <= 0xff ? (byte)text[i] : throw new ModelInputException(file, "pickle calls _codecs.encode on text that latin-1 cannot encode, refused");
        return bytes;
    }

    /// <summary>
    /// <c>numpy.core.multiarray.scalar(dtype, bytes)</c>: the number it holds where the dtype is a boolean, integer or
    /// float of 1-8 bytes, else an inert record of the call.
    /// </summary>
    public static object ScalarValue(PickleGlobal callable, object?[] args)
    {
        if (args is [PickleObject { Type.Name: "dtype", Args: [string code, ..] } dtype, byte[] data] && Value(code, Order(dtype), data) is { } value)
            return value;
        return new PickleObject(callable, args);
    }

    /// <summary><c>numpy.core.multiarray._reconstruct(numpy.ndarray, shape, b'b')</c>: an inert array record (BUILD gives it its state).</summary>
    public static PickleObject ReconstructArray(PickleGlobal callable, object?[] args, string file) => args is [PickleGlobal { Module: "numpy", Name: "ndarray" } cls, ..]
        ? new PickleObject(cls, args)
        : throw new ModelInputException(file, $"pickle rebuilds a numpy array of class '{(args.Length > 0 ? args[0] : "none")}', refused: only numpy.ndarray is read");

    /// <summary>The byte order a dtype's BUILD state gives (<c>(3, '&lt;', ...)</c>); little-endian where absent.</summary>
    static bool Order(PickleObject dtype) => dtype.State is not object?[] { Length: > 1 } state || state[1] as string != ">";

    static object? Value(string code, bool littleEndian, byte[] data)
    {
        // numpy's dtype codes: kind and size, optionally with a byte-order prefix ('<i8', '>f4', '|b1').
        string c = code.TrimStart('<', '>', '=', '|');
        if (code.StartsWith('>')) littleEndian = false;
        if (c.Length < 2 || !int.TryParse(c.AsSpan(1), out int size) || size != data.Length) return null;
        Span<byte> b = data.ToArray();
        if (littleEndian != BitConverter.IsLittleEndian) b.Reverse();
        return (c[0], size) switch
        {
            ('b', 1) => b[0] != 0,
            ('i', 1) => (long)(sbyte)b[0],
            ('i', 2) => (long)BitConverter.ToInt16(b),
            ('i', 4) => (long)BitConverter.ToInt32(b),
            ('i', 8) => BitConverter.ToInt64(b),
            ('u', 1) => (long)b[0],
            ('u', 2) => (long)BitConverter.ToUInt16(b),
            ('u', 4) => (long)BitConverter.ToUInt32(b),
            ('u', 8) when BitConverter.ToUInt64(b) <= long.MaxValue => (long)BitConverter.ToUInt64(b),
            ('f', 2) => (double)BitConverter.ToHalf(b),
            ('f', 4) => (double)BitConverter.ToSingle(b),
            ('f', 8) => BitConverter.ToDouble(b),
            _ => null,
        };
    }
}
