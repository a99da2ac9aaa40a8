using System.Diagnostics;

namespace RMNet.Benchmarking;

/// <summary>Latency statistics of one model over the timed runs.</summary>
/// <param name="MedianMs">Median latency of one batch, milliseconds.</param>
/// <param name="P90Ms">90th-percentile latency, milliseconds.</param>
/// <param name="MinMs">Fastest run, milliseconds.</param>
/// <param name="ImagesPerSecond">Batch size / median latency.</param>
internal sealed record LatencyStats(double MedianMs, double P90Ms, double MinMs, double ImagesPerSecond);

/// <summary>Original against converted, measured in one run.</summary>
/// <param name="Original">The original model.</param>
/// <param name="Converted">The converted model.</param>
/// <param name="Runs">Timed runs per model.</param>
/// <param name="Warmup">Untimed runs per model first.</param>
/// <param name="Batch">Images per run.</param>
internal sealed record BenchmarkResult(LatencyStats Original, LatencyStats Converted, int Runs, int Warmup, int Batch)
{
    /// <summary>Converted median latency / original median latency (above 1: the converted model is slower).</summary>
    public double LatencyRatio => Converted.MedianMs / Original.MedianMs;

    /// <summary>Converted throughput / original throughput.</summary>
    public double ThroughputRatio => Converted.ImagesPerSecond / Original.ImagesPerSecond;
}

/// <summary>
/// Times two models on the same prepared input, alternating which goes first in each round so that drift
/// (thermal, caches, other load) falls on both alike, after untimed warm-up runs.
/// </summary>
internal static class LatencyBenchmark
{
    /// <summary>Runs <paramref name="warmup"/> untimed and <paramref name="runs"/> timed rounds of both actions; <paramref name="cancellationToken"/> is checked after each round.</summary>
    public static BenchmarkResult Run(Action original, Action converted, int batch, int runs, int warmup, IProgress<ProgressStep>? progress = null,
        CancellationToken cancellationToken = default)
    {
        if (runs < 1) throw new ArgumentOutOfRangeException(nameof(runs), "at least one timed run");
        for (int i = 0; i < warmup; i++)
        {
            original();
            converted();
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new ProgressStep("warming up", i + 1, warmup));
        }
        var a = new List<double>(runs);
        var b = new List<double>(runs);
        for (int i = 0; i < runs; i++)
        {
            if (i % 2 == 0) { a.Add(Time(original)); b.Add(Time(converted)); }
            else { b.Add(Time(converted)); a.Add(Time(original)); }
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new ProgressStep("benchmarking", i + 1, runs));
        }
        return new BenchmarkResult(Stats(a, batch), Stats(b, batch), runs, warmup, batch);
    }

    static double Time(Action action)
    {
        long start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    static LatencyStats Stats(List<double> ms, int batch)
    {
        var sorted = ms.OrderBy(x => x).ToArray();
        double median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        double p90 = sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(0.9 * sorted.Length) - 1)];
        return new LatencyStats(median, p90, sorted[0], batch * 1000.0 / median);
    }
}
