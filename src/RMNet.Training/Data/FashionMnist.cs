using static TorchSharp.torch;

namespace RMNet.Data;

/// <summary>
/// Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test images, 28x28 grayscale, ten classes, as
/// IDX files. Debian's <c>dataset-fashion-mnist</c> package installs them under <see cref="DefaultFolder"/>.
/// </summary>
internal static class FashionMnist
{
    /// <summary>Where Debian's dataset-fashion-mnist package puts the files.</summary>
    public const string DefaultFolder = "/usr/share/datasets/fashion-mnist";

    /// <summary>The ten class names, by label.</summary>
    public static IReadOnlyList<string> ClassNames { get; } = new[]
    {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    };

    /// <summary>True where <paramref name="folder"/> holds the four IDX files (raw or gzipped).</summary>
    public static bool IsPresent(string folder) =>
        new[] { "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" }
            .All(name => Find(folder, name) is not null);

    /// <summary>Loads both splits from <paramref name="folder"/>.</summary>
    public static DataSplits Load(string folder = DefaultFolder) =>
        new(LoadSplit(folder, "train"), LoadSplit(folder, "t10k"), "fashion-mnist");

    static LabeledImages LoadSplit(string folder, string prefix)
    {
        string imagesPath = Find(folder, $"{prefix}-images-idx3-ubyte") ?? throw new ModelInputException(folder, $"no {prefix}-images-idx3-ubyte(.gz)");
        string labelsPath = Find(folder, $"{prefix}-labels-idx1-ubyte") ?? throw new ModelInputException(folder, $"no {prefix}-labels-idx1-ubyte(.gz)");
        var (shape, pixels) = IdxFile.Read(imagesPath);
        var (labelShape, labels) = IdxFile.Read(labelsPath);
        if (shape.Length != 3) throw new ModelInputException(imagesPath, $"expected images [N, H, W], found {shape.Length} dimensions");
        if (labelShape.Length != 1 || labelShape[0] != shape[0])
            throw new ModelInputException(labelsPath, $"{labelShape[0]} labels for {shape[0]} images");
        if (labels.Any(l => l >= ClassNames.Count))
            throw new ModelInputException(labelsPath, $"a label is outside 0..{ClassNames.Count - 1}");
        var images = tensor(pixels, ScalarType.Byte).reshape(shape[0], 1, shape[1], shape[2]).to_type(ScalarType.Float32).div_(255f);
        var labelTensor = tensor(labels, ScalarType.Byte).to_type(ScalarType.Int64);
        return new LabeledImages(images, labelTensor, ClassNames, imagesPath);
    }

    static string? Find(string folder, string name) =>
        new[] { name, name + ".gz" }.Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists);
}
