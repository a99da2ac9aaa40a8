using static TorchSharp.torch;

namespace RMNet.Data;

/// <summary>
/// A labelled image set held in memory: images [N, C, H, W] float32 in [0, 1], labels [N] int64 in
/// [0, <see cref="ClassCount"/>). Small data sets (Fashion-MNIST is 47 MB as bytes) fit easily.
/// </summary>
/// <param name="Images">The images, float32 in [0, 1].</param>
/// <param name="Labels">Class indices, int64.</param>
/// <param name="ClassNames">Class names, by index.</param>
/// <param name="Source">Where the images came from (a folder or file), for messages.</param>
public sealed record LabeledImages(Tensor Images, Tensor Labels, IReadOnlyList<string> ClassNames, string Source) : IDisposable
{
    /// <summary>Number of images.</summary>
    public int Count => (int)Labels.shape[0];

    /// <summary>Number of classes.</summary>
    public int ClassCount => ClassNames.Count;

    /// <summary>Image channels.</summary>
    public int Channels => (int)Images.shape[1];

    /// <summary>Image height (= width where square).</summary>
    public int Height => (int)Images.shape[2];

    /// <summary>Image width.</summary>
    public int Width => (int)Images.shape[3];

    /// <summary>The first <paramref name="count"/> images (all where fewer), sharing storage.</summary>
    public LabeledImages Take(int count) => count >= Count ? this
        : this with { Images = Images.narrow(0, 0, count), Labels = Labels.narrow(0, 0, count) };

    /// <summary>A seeded random subset of <paramref name="count"/> images, for quick runs that still see every class.</summary>
    public LabeledImages Sample(int count, long seed)
    {
        if (count >= Count) return this;
        var order = randperm(Count, generator: new Generator((ulong)seed)).narrow(0, 0, count);
        return this with { Images = Images.index_select(0, order), Labels = Labels.index_select(0, order) };
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}

/// <summary>A training and a test split of one data set.</summary>
/// <param name="Train">Images to train on.</param>
/// <param name="Test">Held-out images to measure accuracy on.</param>
/// <param name="Name">The data set's name, e.g. "fashion-mnist".</param>
public sealed record DataSplits(LabeledImages Train, LabeledImages Test, string Name) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Train.Dispose();
        Test.Dispose();
    }
}
