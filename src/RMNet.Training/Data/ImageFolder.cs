using SkiaSharp;
using static TorchSharp.torch;

namespace RMNet.Data;

/// <summary>
/// A user's own images, one sub-folder per class (the class names, sorted, give the labels), decoded with
/// SkiaSharp (PNG, JPEG, BMP, GIF, WebP) and resized to one size. Grayscale where the first image is.
/// </summary>
internal static class ImageFolder
{
    static readonly HashSet<string> Extensions = new(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    /// <summary>True where <paramref name="folder"/> has at least one sub-folder holding an image.</summary>
    public static bool IsPresent(string folder) =>
        Directory.Exists(folder) && Directory.EnumerateDirectories(folder).Any(d => ImagesIn(d).Any());

    /// <summary>
    /// Loads <paramref name="folder"/>/&lt;class&gt;/*. <paramref name="size"/> is the side images are resized to
    /// (null: the first image's size); <paramref name="classNames"/>, where given, fixes the label order (a test
    /// split must use the training split's classes).
    /// </summary>
    public static LabeledImages Load(string folder, int? size = null, IReadOnlyList<string>? classNames = null, int? channels = null)
    {
        var classes = classNames ?? Directory.EnumerateDirectories(folder).Where(d => ImagesIn(d).Any())
            .Select(Path.GetFileName).Select(n => n!).Order(StringComparer.Ordinal).ToList();
        if (classes.Count < 2)
            throw new ModelInputException(folder, $"an image folder needs at least two class sub-folders with images, found {classes.Count}");
        var files = new List<(string Path, int Label)>();
        for (int c = 0; c < classes.Count; c++)
        {
            string dir = Path.Combine(folder, classes[c]);
            if (!Directory.Exists(dir)) throw new ModelInputException(folder, $"no sub-folder for class '{classes[c]}'");
            files.AddRange(ImagesIn(dir).Order(StringComparer.Ordinal).Select(f => (f, c)));
        }
        if (files.Count == 0) throw new ModelInputException(folder, "no images found");
        int side = size ?? 0, ch = channels ?? 0;
        if (side == 0 || ch == 0)
        {
            using var first = Decode(files[0].Path);
            if (side == 0) side = Math.Max(first.Width, first.Height);
            if (ch == 0) ch = first.ColorType == SKColorType.Gray8 ? 1 : 3;
        }
        var pixels = new byte[(long)files.Count * ch * side * side];
        var rgba = new SKImageInfo(side, side, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        for (int i = 0; i < files.Count; i++)
        {
            using var bitmap = Decode(files[i].Path);
            using var resized = bitmap.Resize(rgba, new SKSamplingOptions(SKFilterMode.Linear))
                ?? throw new ModelInputException(files[i].Path, "the image could not be resized");
            var span = resized.GetPixelSpan();
            long plane = (long)side * side, offset = (long)i * ch * plane;
            for (long p = 0; p < plane; p++)
                for (int k = 0; k < ch; k++)
                    pixels[offset + k * plane + p] = span[(int)(4 * p + k)];
        }
        var images = tensor(pixels, ScalarType.Byte).reshape(files.Count, ch, side, side).to_type(ScalarType.Float32).div_(255f);
        var labels = tensor(files.Select(f => (long)f.Label).ToArray());
        return new LabeledImages(images, labels, classes, folder);
    }

    static SKBitmap Decode(string path)
    {
        using var stream = File.OpenRead(path);
        return SKBitmap.Decode(stream) ?? throw new ModelInputException(path, "not a readable image (PNG, JPEG, BMP, GIF or WebP)");
    }

    static IEnumerable<string> ImagesIn(string dir) =>
        Directory.EnumerateFiles(dir).Where(f => Extensions.Contains(Path.GetExtension(f)));
}
