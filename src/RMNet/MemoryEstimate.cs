using System.Globalization;

namespace RMNet;

/// <summary>
/// What converting, verifying and benchmarking need in memory at their peak, estimated from the output's size (the
/// plain model's weights, float32), and the check that this fits the memory the machine has available, so a model
/// too large for the machine is refused with the figures instead of being killed by the kernel half-way.
/// The factors are the largest measured with <c>/usr/bin/time -f %M</c> on ResNet-50/152 (grouped and dense RM)
/// and IResNet-100, rounded up (README, "Memory").
/// </summary>
internal static class MemoryEstimate
{
    /// <summary>The process itself with .NET, libtorch and ONNX Runtime loaded: measured 180-230 MB on a tiny model.</summary>
    public const long BaseBytes = 256L << 20;

    /// <summary>Set to a size (bytes, or with a K/M/G suffix) to use instead of the detected available memory; <c>unlimited</c> turns the check off.</summary>
    public const string OverrideVariable = "RMNET_MEMORY_AVAILABLE";

    /// <summary>
    /// Peak of a conversion that writes <paramref name="outputBytes"/> from a checkpoint of <paramref name="sourceBytes"/> (with
    /// <paramref name="verify"/>: and runs it); <paramref name="externalData"/>: an ONNX output large enough for external
    /// data, written tensor by tensor and mapped, not copied, by ONNX Runtime.
    /// </summary>
    public static long Convert(long outputBytes, long sourceBytes, bool verify, bool externalData = false) =>
        BaseBytes + sourceBytes + (long)((externalData
            ? verify ? ConvertVerifyExternalFactor : ConvertExternalFactor
            : verify ? ConvertVerifyFactor : ConvertFactor) * outputBytes);

    /// <summary>
    /// What reading a checkpoint of <paramref name="sourceBytes"/> and running the RM transform hold before the output's
    /// size is known (float64 working copies, the transform's own tensors): measured 0.73 GiB for ResNet-50 (98 MiB) and
    /// 1.5 GiB for ResNet-152 (230 MiB), so the process, then 6 times the checkpoint. Checked before loading, so that a
    /// machine without even that much refuses before it starts rather than in the check after the transform.
    /// </summary>
    public static long Load(long sourceBytes) => BaseBytes + 6 * sourceBytes;

    /// <summary>
    /// Peak of verifying a converted model of <paramref name="convertedBytes"/> against its original of <paramref name="sourceBytes"/>;
    /// <paramref name="externalData"/>: an ONNX model whose weights are in a side file, which ONNX Runtime maps instead of copying.
    /// </summary>
    public static long Verify(long convertedBytes, long sourceBytes, bool externalData = false) =>
        BaseBytes + sourceBytes + (long)((externalData ? VerifyExternalFactor : VerifyFactor) * convertedBytes);

    /// <summary>Peak of benchmarking a converted model of <paramref name="convertedBytes"/> against its original of <paramref name="sourceBytes"/>.</summary>
    public static long Bench(long convertedBytes, long sourceBytes) => BaseBytes + (long)(BenchSourceFactor * sourceBytes) + (long)(BenchFactor * convertedBytes);

    // Measured, beyond the base and the checkpoint, per byte of output (README, "Stopping, temporary files and memory"):
    // convert 1.2-2.35 (IResNet-100 the most), convert --verify 3.6-4.3, verify 2.2-3.5 (1.24 with external data),
    // bench 2.4-3.6 with 6x the checkpoint for the original's own export in ONNX Runtime.

    /// <summary>Peak memory per byte of output: convert (weights in memory, each tensor copied once more as it is written).</summary>
    public const double ConvertFactor = 2.5;

    /// <summary>convert --verify: the written model loaded again in ONNX Runtime beside the weights.</summary>
    public const double ConvertVerifyFactor = 5.0;

    /// <summary>convert to an ONNX file with external data: measured 1.5x (dense ResNet-152, 3.04 GiB).</summary>
    public const double ConvertExternalFactor = 1.7;
    /// <summary>convert --verify to an ONNX file with external data: measured 2.7x (dense ResNet-152: 8.30 GiB).</summary>
    public const double ConvertVerifyExternalFactor = 3.0;
    /// <summary>verify: the converted model in ONNX Runtime (weights plus its pre-packed copies).</summary>
    public const double VerifyFactor = 4.0;

    /// <summary>verify of an ONNX model with external data.</summary>
    public const double VerifyExternalFactor = 1.5;

    /// <summary>bench: the converted model exported and loaded in ONNX Runtime.</summary>
    public const double BenchFactor = 4.5;

    /// <summary>bench: the original runs too (its export in ONNX Runtime).</summary>
    public const double BenchSourceFactor = 6.0;

    /// <summary>
    /// Memory available to this process now: Linux's MemAvailable, capped by a cgroup (v2) limit where one is set;
    /// <see cref="OverrideVariable"/> replaces it. Null where unknown (other systems) or the check is turned off.
    /// </summary>
    public static long? Available()
    {
        if (Environment.GetEnvironmentVariable(OverrideVariable) is { Length: > 0 } given)
            return given.Equals("unlimited", StringComparison.OrdinalIgnoreCase) ? null
                : ParseSize(given) ?? throw new ModelInputException(OverrideVariable, $"'{given}' is not a size (bytes, or with K, M or G) nor 'unlimited'");
        if (!OperatingSystem.IsLinux()) return null;
        long? available = MemInfoKilobytes("MemAvailable") * 1024;
        if (CgroupBytes("memory.max") is long max && CgroupBytes("memory.current") is long current)
            available = Math.Min(available ?? long.MaxValue, Math.Max(0, max - current));
        return available;
    }

    /// <summary>
    /// Throws a <see cref="ModelInputException"/> naming <paramref name="file"/>, the estimate and the memory available
    /// where <paramref name="estimate"/> bytes of <paramref name="what"/> exceed it.
    /// </summary>
    public static void EnsureFits(string file, string what, long estimate, string? advice = null)
    {
        if (Available() is not long available || estimate <= available) return;
        // Precise enough that the two figures differ (0.8 GiB needed and 0.8 GiB available read as a contradiction).
        int digits = 1;
        while (digits < 3 && Gib(estimate, digits) == Gib(available, digits)) digits++;
        throw new ModelInputException(file, $"{what} needs about {Gib(estimate, digits)} of memory at its peak and {Gib(available, digits)} is available, so it was not started"
            + $"{(advice is null ? "" : "; " + advice)} (set {OverrideVariable} to override)");
    }

    static string Gib(long bytes, int digits) => (bytes / (double)(1L << 30)).ToString("F" + digits, CultureInfo.InvariantCulture) + " GiB";

    static long? ParseSize(string text)
    {
        text = text.Trim();
        long unit = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1 };
        if (unit > 1) text = text[..^1];
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= 0 ? (long)(value * unit) : null;
    }

    static long? MemInfoKilobytes(string key)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith(key + ":", StringComparison.Ordinal)
                    && long.TryParse(line[(key.Length + 1)..].Trim().Split(' ')[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kb))
                    return kb;
        }
        catch (IOException) { }
        return null;
    }

    static long? CgroupBytes(string file)
    {
        try
        {
            // cgroup v2: this process's group, e.g. "0::/user.slice/..."
            var group = File.ReadLines("/proc/self/cgroup").FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal))?[3..];
            if (group is null) return null;
            string path = Path.Combine("/sys/fs/cgroup", group.TrimStart('/'), file);
            return File.Exists(path) && long.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }
}
