using static TorchSharp.torch;
namespace RMNet.Data;

/// <summary>
/// Opens the data set a user names: <c>fashion-mnist</c> (Debian's package folder), a folder of Fashion-MNIST
/// IDX files, or an image folder: <c>train/</c> and <c>test/</c> (or <c>val/</c>) each with one sub-folder per
/// class, or just class sub-folders, then split seeded 90/10.
/// </summary>
public static class DataSets
{
    /// <summary>Loads <paramref name="name"/>; a clear <see cref="ModelInputException"/> where it is neither kind.</summary>
    /// <param name="name"><c>fashion-mnist</c> or a folder.</param>
    /// <param name="imageSize">Side image folders are resized to; null for the first image's size.</param>
    /// <param name="seed">Seed of the 90/10 split of an unsplit image folder.</param>
    public static DataSplits Open(string name, int? imageSize = null, long seed = 0)
    {
        if (name == "fashion-mnist")
        {
            if (!FashionMnist.IsPresent(FashionMnist.DefaultFolder))
                throw new ModelInputException(FashionMnist.DefaultFolder,
                    "Fashion-MNIST not found; install it (apt-get install dataset-fashion-mnist) or pass --data <folder> with one sub-folder per class");
            return FashionMnist.Load();
        }
        if (!Directory.Exists(name))
            throw new ModelInputException(name, File.Exists(name) ? "is a file; --data takes 'fashion-mnist' or a folder" : "data folder not found");
        if (FashionMnist.IsPresent(name)) return FashionMnist.Load(name);
        string train = Path.Combine(name, "train");
        string? test = new[] { "test", "val" }.Select(s => Path.Combine(name, s)).FirstOrDefault(ImageFolder.IsPresent);
        if (ImageFolder.IsPresent(train) && test is not null)
        {
            var trainSet = ImageFolder.Load(train, imageSize);
            var testSet = ImageFolder.Load(test, trainSet.Height, trainSet.ClassNames, trainSet.Channels);
            return new DataSplits(trainSet, testSet, Path.GetFileName(Path.TrimEndingDirectorySeparator(name)));
        }
        if (ImageFolder.IsPresent(name))
        {
            var all = ImageFolder.Load(name, imageSize);
            return Split(all, seed);
        }
        throw new ModelInputException(name, "neither Fashion-MNIST IDX files nor an image folder (one sub-folder of images per class)");
    }

    static DataSplits Split(LabeledImages all, long seed)
    {
        var order = randperm(all.Count, generator: new Generator((ulong)seed));
        int testCount = Math.Max(1, all.Count / 10);
        var test = order.narrow(0, 0, testCount);
        var train = order.narrow(0, testCount, all.Count - testCount);
        return new DataSplits(
            all with { Images = all.Images.index_select(0, train), Labels = all.Labels.index_select(0, train) },
            all with { Images = all.Images.index_select(0, test), Labels = all.Labels.index_select(0, test) },
            Path.GetFileName(Path.TrimEndingDirectorySeparator(all.Source)));
    }
}
