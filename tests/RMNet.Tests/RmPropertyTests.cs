using RMNet.Plain;
using RMNet.Rm;
using RMNet.Weights;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RMNet.Tests;

/// <summary>
/// Random block configurations (channels, stride, groups, width, shortcut kind, kernel, asymmetric "same"
/// padding): the plain convs must compute relu(branch(x) + shortcut(x)) for non-negative x, computed here
/// directly in float64 with torch's own conv2d.
/// </summary>
public class RmPropertyTests
{
    public static IEnumerable<object[]> Seeds() => Enumerable.Range(0, 40).SelectMany(i => new[]
    {
        new object[] { i, RmMode.Grouped }, new object[] { i, RmMode.Dense },
    });

    [Theory]
    [MemberData(nameof(Seeds))]
    public void ReserveAndMergeIsExact(int seed, RmMode mode)
    {
        var rng = new Random(seed);
        var g = new Generator((ulong)seed + 1);
        bool bottleneck = rng.Next(2) == 0;
        int c = rng.Next(1, 9), groups = bottleneck ? new[] { 1, 2, 4 }[rng.Next(3)] : 1;
        int width = groups * rng.Next(1, 5), stride = rng.Next(1, 3);
        bool projection = stride != 1 || rng.Next(2) == 0;
        int outC = projection ? rng.Next(1, 9) : c;
        int k = new[] { 3, 3, 5, 2 }[rng.Next(4)];
        // "same" padding split as the kernel allows, sometimes asymmetric (k even, or on purpose).
        Padding2d Same(int kk) { int begin = rng.Next(0, kk); return new Padding2d(begin, begin, kk - 1 - begin, kk - 1 - begin); }

        FusedConv Conv(long o, long i, int kk, int s, Padding2d p, int grp = 1) =>
            new(new ConvWeights(randn(new[] { o, i / grp, kk, kk }, ScalarType.Float64, generator: g) * 0.5,
                randn(new[] { o }, ScalarType.Float64, generator: g) * 0.2), s, p, grp);

        var chain = bottleneck
            ? new[] { Conv(width, c, 1, 1, Padding2d.All(0)), Conv(width, width, k, stride, Same(k), groups), Conv(outC, width, 1, 1, Padding2d.All(0)) }
            : new[] { Conv(width, c, k, stride, Same(k)), Conv(outC, width, k, 1, Same(k)) };
        var shortcut = projection ? Conv(outC, c, 1, stride, Padding2d.All(0)) : null;

        var x = rand(new long[] { 2, c, rng.Next(5, 12), rng.Next(5, 12) }, ScalarType.Float64, generator: g); // x >= 0
        var expected = Reference(chain, shortcut, x);

        var rm = ResidualChainRm.Transform(chain, shortcut, mode);
        var convs = rm.Convs;
        Assert.Equal(chain.Length, convs.Count);
        Assert.Equal(c + rm.ZeroChannels + width, convs[0].OutChannels);
        if (mode == RmMode.Grouped && bottleneck)
        {
            int q = width / groups;
            Assert.Equal(0, (c + rm.ZeroChannels) % q);                     // reserved channels fill whole groups
            Assert.Equal((c + rm.ZeroChannels) / q + groups, convs[1].Groups);
        }
        var layers = convs.SelectMany(cv => new PlainLayer[] { cv, new ReluLayer() }).ToList();
        var actual = new PlainModel(layers, c).Forward(x.to_type(ScalarType.Float32)).to_type(ScalarType.Float64);

        Assert.Equal(expected.shape, actual.shape);
        double err;
        using (NewDisposeScope()) err = (actual - expected).abs().max().item<double>() / expected.abs().max().clamp_min(1e-9).item<double>();
        Assert.True(err < 1e-5, $"seed {seed} {mode}: bottleneck={bottleneck} c={c} w={width} g={groups} s={stride} k={k} proj={projection}: rel error {err}");
    }

    static Tensor Reference(IReadOnlyList<FusedConv> chain, FusedConv? shortcut, Tensor x)
    {
        Tensor Apply(FusedConv cv, Tensor t) => F.conv2d(F.pad(t, cv.Padding.ToTorchPad()), cv.Weights.Weight, cv.Weights.Bias,
            strides: new long[] { cv.Stride, cv.Stride }, groups: cv.Groups);
        var y = x;
        for (int i = 0; i < chain.Count; i++)
        {
            y = Apply(chain[i], y);
            if (i < chain.Count - 1) y = F.relu(y);
        }
        return F.relu(y + (shortcut is null ? x : Apply(shortcut, x)));
    }

    public static IEnumerable<object[]> PooledSeeds() => Enumerable.Range(0, 12).SelectMany(i => new[]
    {
        new object[] { i, RmMode.Grouped }, new object[] { i, RmMode.Dense },
    });

    /// <summary>
    /// ResNet-D shortcuts: relu(branch(x) + proj(avgpool2x2(x))), the stride in the first conv (Basic) or the middle
    /// one (Bottleneck), on even-sized inputs where the pool's windows are whole.
    /// </summary>
    [Theory]
    [MemberData(nameof(PooledSeeds))]
    public void AveragePooledShortcutIsExactOnEvenSizes(int seed, RmMode mode)
    {
        var rng = new Random(100 + seed);
        var g = new Generator((ulong)seed + 101);
        bool bottleneck = seed % 2 == 0;
        int c = rng.Next(1, 9), groups = bottleneck ? new[] { 1, 2, 4 }[rng.Next(3)] : 1;
        int width = groups * rng.Next(1, 5), outC = rng.Next(1, 9);
        FusedConv Conv(long o, long i, int kk, int s, int pad, int grp = 1) =>
            new(new ConvWeights(randn(new[] { o, i / grp, kk, kk }, ScalarType.Float64, generator: g) * 0.5,
                randn(new[] { o }, ScalarType.Float64, generator: g) * 0.2), s, Padding2d.All(pad), grp);
        var chain = bottleneck
            ? new[] { Conv(width, c, 1, 1, 0), Conv(width, width, 3, 2, 1, groups), Conv(outC, width, 1, 1, 0) }
            : new[] { Conv(width, c, 3, 2, 1), Conv(outC, width, 3, 1, 1) };
        var projection = Conv(outC, c, 1, 1, 0);
        var x = rand(new long[] { 2, c, 2 * rng.Next(3, 7), 2 * rng.Next(3, 7) }, ScalarType.Float64, generator: g);

        var y = x;
        for (int i = 0; i < chain.Length; i++)
        {
            y = F.conv2d(F.pad(y, chain[i].Padding.ToTorchPad()), chain[i].Weights.Weight, chain[i].Weights.Bias,
                strides: new long[] { chain[i].Stride, chain[i].Stride }, groups: chain[i].Groups);
            if (i < chain.Length - 1) y = F.relu(y);
        }
        var pooled = F.avg_pool2d(x, new long[] { 2, 2 }, new long[] { 2, 2 }, ceil_mode: true, count_include_pad: false);
        var expected = F.relu(y + F.conv2d(pooled, projection.Weights.Weight, projection.Weights.Bias));

        var convs = ResidualChainRm.Transform(chain, projection, mode, shortcutPool: 2).Convs;
        var layers = convs.SelectMany(cv => new PlainLayer[] { cv, new ReluLayer() }).ToList();
        var actual = new PlainModel(layers, c).Forward(x.to_type(ScalarType.Float32)).to_type(ScalarType.Float64);
        double err;
        using (NewDisposeScope()) err = (actual - expected).abs().max().item<double>() / expected.abs().max().clamp_min(1e-9).item<double>();
        Assert.True(err < 1e-5, $"seed {seed} {mode}: bottleneck={bottleneck} c={c} w={width} g={groups}: rel error {err}");
    }

    [Fact]
    public void APooledShortcutNeedsOneStridedConvBeforeTheLast()
    {
        var w = new ConvWeights(ones(4, 4, 3, 3, dtype: ScalarType.Float64), zeros(4, dtype: ScalarType.Float64));
        var p = new FusedConv(new ConvWeights(ones(4, 4, 1, 1, dtype: ScalarType.Float64), null), 1, Padding2d.All(0));
        var lastStrided = new[] { new FusedConv(w, 1, Padding2d.All(1)), new FusedConv(w, 2, Padding2d.All(1)) };
        var e = Assert.Throws<RmException>(() => ResidualChainRm.Transform(lastStrided, p, shortcutPool: 2));
        Assert.Contains("not its last", e.Message);
    }

    [Fact]
    public void TapOutsideKernelIsRefused()
    {
        var w = new ConvWeights(ones(4, 4, 3, 3, dtype: ScalarType.Float64), zeros(4, dtype: ScalarType.Float64));
        var chain = new[] { new FusedConv(w, 1, new Padding2d(3, 3, -1, -1)), new FusedConv(w, 1, Padding2d.All(1)) };
        var e = Assert.Throws<RmException>(() => ResidualChainRm.Transform(chain, null));
        Assert.Contains("no tap (3,3)", e.Message);
    }

    [Fact]
    public void IdentityShortcutWithStrideIsRefused()
    {
        var w = new ConvWeights(ones(4, 4, 3, 3, dtype: ScalarType.Float64), zeros(4, dtype: ScalarType.Float64));
        var chain = new[] { new FusedConv(w, 2, Padding2d.All(1)), new FusedConv(w, 1, Padding2d.All(1)) };
        var e = Assert.Throws<RmException>(() => ResidualChainRm.Transform(chain, null));
        Assert.Contains("stride 2", e.Message);
    }

    [Fact]
    public void BatchNormFusionMatchesConvThenBatchNorm()
    {
        var g = new Generator(7);
        var conv = new ConvWeights(randn(new long[] { 5, 3, 3, 3 }, ScalarType.Float64, generator: g), randn(new long[] { 5 }, ScalarType.Float64, generator: g));
        var bn = new BatchNormWeights(rand(5, ScalarType.Float64, generator: g) + 0.5, randn(5, ScalarType.Float64, generator: g),
            randn(5, ScalarType.Float64, generator: g), rand(5, ScalarType.Float64, generator: g) + 0.1, 1e-3);
        var x = randn(new long[] { 2, 3, 6, 6 }, ScalarType.Float64, generator: g);
        var expected = F.batch_norm(F.conv2d(x, conv.Weight, conv.Bias), bn.Mean, bn.Var, bn.Gamma, bn.Beta, false, 0.1, 1e-3);
        var fused = BatchNormFusion.Fuse(conv, bn);
        var actual = F.conv2d(x, fused.Weight, fused.Bias);
        using (NewDisposeScope()) Assert.True((actual - expected).abs().max().item<double>() < 1e-12);
        Assert.Equal(ScalarType.Float64, fused.Weight.dtype);
    }

    [Fact]
    public void FreshZerosAreZerosOnUntouchedNativeMemoryAndStayUsable()
    {
        // The dense kernels' fast path: if TorchSharp's native export ever stops binding, conversions fall back
        // to torch.zeros (correct, 4x slower for dense ResNet-50); this says so instead of slowing down unseen.
        Assert.True(FreshZeros.OnFreshMemory);
        for (int round = 0; round < 3; round++)
        {
            using var scope = NewDisposeScope();
            var t = FreshZeros.Float32(97, 1000, 3, 3); // 3.5 MB: above glibc's mmap threshold on a fresh heap
            Assert.Equal(new long[] { 97, 1000, 3, 3 }, t.shape);
            Assert.Equal(ScalarType.Float32, t.dtype);
            Assert.Equal(0, t.count_nonzero().item<long>());
            t[5, 7, 1, 1] = tensor(2.5f);
            t.add_(1);
            Assert.Equal(97 * 1000 * 9 + 2.5, t.sum(type: ScalarType.Float64).item<double>(), 6);
            var small = FreshZeros.Float32(2, 3); // from the heap, possibly reused memory: calloc clears it
            Assert.Equal(0, small.count_nonzero().item<long>());
        }
    }
}
