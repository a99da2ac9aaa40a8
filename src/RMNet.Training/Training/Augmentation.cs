using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Training;

/// <summary>Standard small-image augmentation on a batch: random shifts by up to <c>pad</c> pixels (zero fill) and horizontal flips.</summary>
internal static class Augmentation
{
    /// <summary>A new batch: each image shifted and possibly mirrored, drawn from <paramref name="generator"/>.</summary>
    public static Tensor ShiftAndFlip(Tensor images, int pad, Generator generator)
    {
        using var scope = NewDisposeScope();
        long n = images.shape[0], h = images.shape[2], w = images.shape[3];
        var padded = nn.functional.pad(images, new long[] { pad, pad, pad, pad });
        var offsets = randint(0, 2 * pad + 1, new long[] { n, 2 }, generator: generator).data<long>().ToArray();
        var flips = randint(0, 2, new long[] { n }, generator: generator).data<long>().ToArray();
        var crops = new Tensor[n];
        for (int i = 0; i < n; i++)
        {
            var crop = padded[i].narrow(1, offsets[2 * i], h).narrow(2, offsets[2 * i + 1], w);
            crops[i] = flips[i] == 1 ? crop.flip(2) : crop;
        }
        return stack(crops).MoveToOuterDisposeScope();
    }
}
