using RMNet.Verification;
using Xunit;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// A TorchSharp forward pass cannot be interrupted, so where a stop can be asked for the original runs one image at a
/// time during verification: a stop waits for one image's pass, not a batch's (ResNet-152: 2.4 s before, 0.5-0.7 s now).
/// </summary>
public class VerifierStopTests
{
    [Fact]
    public void TheOriginalRunsImageByImageAndStopsBetweenImages()
    {
        using var stop = new CancellationTokenSource();
        var seen = new List<long>();
        Tensor Forward(Tensor x)
        {
            seen.Add(x.shape[0]);
            if (seen.Count == 2) stop.Cancel();   // a stop arrives during the second image's pass
            return x.sum(new long[] { 2, 3 });
        }
        var run = Verifier.OneImageAtATime(Forward, stop.Token);
        var x = rand(4, 3, 5, 5);
        Assert.Throws<OperationCanceledException>(() => run(x));
        Assert.Equal(new long[] { 1, 1 }, seen);   // the third image never started

        // Without a token that can be cancelled the batch runs whole, and the images' results are the batch's.
        seen.Clear();
        var whole = Verifier.OneImageAtATime(Forward, CancellationToken.None)(x);
        Assert.Equal(new long[] { 4 }, seen);
        using var other = new CancellationTokenSource();
        var byImage = Verifier.OneImageAtATime(t => t.sum(new long[] { 2, 3 }), other.Token)(x);
        Assert.True(whole.allclose(byImage));
    }
}
