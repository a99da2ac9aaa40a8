using RMNet.Data;
using SkiaSharp;
using Xunit;

namespace RMNet.Tests;

public class DataTests
{
    [Fact]
    public void FashionMnistIdxFilesLoadWithShapesAndRealLabels()
    {
        using var data = FashionMnist.Load(Fixture.FashionSubset);
        Assert.Equal(1000, data.Train.Count);
        Assert.Equal(500, data.Test.Count);
        Assert.Equal(new long[] { 1000, 1, 28, 28 }, data.Train.Images.shape);
        Assert.Equal(10, data.Train.ClassCount);
        // Fashion-MNIST's published first labels: training set 9 (ankle boot), 0, 0, 3; test set 9, 2, 1, 1.
        Assert.Equal(new long[] { 9, 0, 0, 3 }, data.Train.Labels.narrow(0, 0, 4).data<long>().ToArray());
        Assert.Equal(new long[] { 9, 2, 1, 1 }, data.Test.Labels.narrow(0, 0, 4).data<long>().ToArray());
        using (TorchSharp.torch.NewDisposeScope())
        {
            Assert.InRange(data.Train.Images.min().item<float>(), 0f, 0f);
            Assert.InRange(data.Train.Images.max().item<float>(), 1f, 1f);
        }
        // Every class appears in the subset.
        Assert.Equal(10, data.Train.Labels.unique().Item1.shape[0]);
    }

    [Fact]
    public void BadIdxFilesAreRefusedNamingTheFile()
    {
        using var dir = Fixture.Temp();
        File.WriteAllBytes(dir.File("bad"), new byte[] { 1, 2, 3, 4, 5, 6 });
        var e = Assert.Throws<ModelInputException>(() => IdxFile.Read(dir.File("bad")));
        Assert.Contains("magic", e.Message);
        File.WriteAllBytes(dir.File("short"), new byte[] { 0, 0, 8, 1, 0, 0, 0, 9, 1, 2 });
        e = Assert.Throws<ModelInputException>(() => IdxFile.Read(dir.File("short")));
        Assert.Contains("truncated", e.Message);
        Assert.Equal(dir.File("short"), e.File);
    }

    [Fact]
    public void MissingDataGivesOneClearError()
    {
        using var dir = Fixture.Temp();
        var e = Assert.Throws<ModelInputException>(() => DataSets.Open(dir.File("nowhere")));
        Assert.Contains("not found", e.Message);
        Directory.CreateDirectory(dir.File("empty"));
        e = Assert.Throws<ModelInputException>(() => DataSets.Open(dir.File("empty")));
        Assert.Contains("neither Fashion-MNIST", e.Message);
    }

    [Fact]
    public void ImageFolderReadsClassesPixelsAndSplits()
    {
        using var dir = Fixture.Temp();
        foreach (var split in new[] { "train", "test" })
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < 2; i++)
                    WriteGray(Path.Combine(dir.Path, split, $"class{c}", $"{i}.png"), (byte)(40 * c + i));
        using var data = DataSets.Open(dir.Path);
        Assert.Equal(new[] { "class0", "class1", "class2" }, data.Train.ClassNames);
        Assert.Equal(new long[] { 6, 1, 6, 6 }, data.Train.Images.shape);
        Assert.Equal(new long[] { 0, 0, 1, 1, 2, 2 }, data.Test.Labels.data<long>().ToArray());
        // PNG is lossless: the pixel values come back exactly (as value / 255).
        using (TorchSharp.torch.NewDisposeScope()) Assert.Equal(81f / 255f, data.Train.Images[5, 0, 3, 2].item<float>(), 6);
    }

    [Fact]
    public void UnsplitImageFolderIsSplitNinetyTen()
    {
        using var dir = Fixture.Temp();
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < 10; i++)
                WriteGray(Path.Combine(dir.Path, $"c{c}", $"{i}.png"), (byte)i);
        using var data = DataSets.Open(dir.Path);
        Assert.Equal(18, data.Train.Count);
        Assert.Equal(2, data.Test.Count);
    }

    [Fact]
    public void AnUnreadableImageIsNamed()
    {
        using var dir = Fixture.Temp();
        WriteGray(Path.Combine(dir.Path, "a", "0.png"), 1);
        WriteGray(Path.Combine(dir.Path, "b", "0.png"), 2);
        File.WriteAllText(Path.Combine(dir.Path, "b", "1.png"), "not an image");
        var e = Assert.Throws<ModelInputException>(() => DataSets.Open(dir.Path));
        Assert.EndsWith("1.png", e.File);
    }

    static void WriteGray(string path, byte value)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bitmap = new SKBitmap(new SKImageInfo(6, 6, SKColorType.Gray8));
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 6; x++)
                bitmap.SetPixel(x, y, new SKColor(value, value, value));
        using var file = File.Create(path);
        bitmap.Encode(file, SKEncodedImageFormat.Png, 100);
    }
}
