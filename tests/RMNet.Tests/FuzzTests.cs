using System.IO.Compression;
using RMNet.Cli;
using Xunit;
using Xunit.Abstractions;

namespace RMNet.Tests;

/// <summary>
/// Seeded, time-bounded fuzzing of the readers through the CLI: mutated .pth, .safetensors and .onnx files
/// and whole-module pickles (bit flips, truncations, splices, overwrites) must each end in a valid result (exit 0) or a clean refusal
/// (exit 2): never an internal error, an unhandled exception, or a hang.
/// </summary>
public class FuzzTests(ITestOutputHelper output)
{
    const int CasesPerFormat = 500;
    static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData("pth")]
    [InlineData("safetensors")]
    [InlineData("onnx")]
    [InlineData("whole-module")]
    public async Task MutatedFilesAreConvertedOrRefusedCleanly(string format)
    {
        using var dir = Fixture.Temp();
        byte[] seed = Seed(format, dir);
        var rng = new Random(20211207 + format.Length);
        string label = format;
        bool wholeModule = format == "whole-module";
        if (wholeModule) format = "pth";
        var outcomes = new Dictionary<int, int>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < CasesPerFormat; i++)
        {
            string input = dir.File($"case.{format}");
            // A whole module's pickle is mutated inside a valid zip (CRCs right), so the cases reach the pickle reader.
            File.WriteAllBytes(input, wholeModule ? WithPickle(Fixture.Path_("basic_narrow_whole.pth"), Mutate(seed, rng)) : Mutate(seed, rng));
            string[] args = format == "onnx"
                ? new[] { "inspect", input, "--quiet" }
                : new[] { "convert", input, "-o", dir.File("out.onnx"), "--force", "--quiet", "--input-size", "32" };
            var stderr = new StringWriter();
            var run = Task.Run(() => CliApp.Run(args, TextWriter.Null, stderr));
            Assert.True(await Task.WhenAny(run, Task.Delay(CaseTimeout)) == run, $"case {i} hung");
            int code = await run;
            outcomes[code] = outcomes.GetValueOrDefault(code) + 1;
            Assert.True(code is ExitCodes.Success or ExitCodes.BadInput, $"{format} case {i}: exit {code}: {stderr}");
            if (code == ExitCodes.BadInput) Assert.StartsWith("rmnet: error: ", stderr.ToString());
            Assert.Empty(Directory.GetFileSystemEntries(dir.Path, ".rmnet-*"));
        }
        output.WriteLine($"{label}: {CasesPerFormat} cases in {clock.Elapsed.TotalSeconds:F1} s: " +
            string.Join(", ", outcomes.OrderBy(kv => kv.Key).Select(kv => $"exit {kv.Key}: {kv.Value}")));
    }

    static byte[] Seed(string format, TempDir dir)
    {
        if (format == "whole-module") return PickleOf(Fixture.Path_("basic_narrow_whole.pth"));
        if (format != "onnx") return File.ReadAllBytes(Fixture.Path_($"basic_narrow.{format}"));
        string onnx = dir.File("seed.onnx");
        Assert.Equal(0, CliApp.Run(new[] { "convert", Fixture.Path_("basic_narrow.pth"), "-o", onnx, "--quiet" }, TextWriter.Null, TextWriter.Null));
        var bytes = File.ReadAllBytes(onnx);
        File.Delete(onnx);
        return bytes;
    }

    static byte[] PickleOf(string archive)
    {
        using var zip = ZipFile.OpenRead(archive);
        using var s = zip.Entries.Single(e => e.Name == "data.pkl").Open();
        var bytes = new MemoryStream();
        s.CopyTo(bytes);
        return bytes.ToArray();
    }

    /// <summary>The archive with its data.pkl replaced by <paramref name="pickle"/>, every other entry as it was.</summary>
    static byte[] WithPickle(string archive, byte[] pickle)
    {
        var result = new MemoryStream();
        using (var source = ZipFile.OpenRead(archive))
        using (var target = new ZipArchive(result, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var e in source.Entries)
            {
                using var to = target.CreateEntry(e.FullName, CompressionLevel.NoCompression).Open();
                if (e.Name == "data.pkl") to.Write(pickle);
                else { using var from = e.Open(); from.CopyTo(to); }
            }
        return result.ToArray();
    }

    static byte[] Mutate(byte[] seed, Random rng)
    {
        var data = (byte[])seed.Clone();
        switch (rng.Next(5))
        {
            case 0: // bit flips, mostly near the start where headers live
                for (int k = rng.Next(1, 9); k > 0; k--)
                {
                    int pos = rng.Next(2) == 0 ? rng.Next(Math.Min(data.Length, 4096)) : rng.Next(data.Length);
                    data[pos] ^= (byte)(1 << rng.Next(8));
                }
                return data;
            case 1: // truncation
                return data[..rng.Next(data.Length)];
            case 2: // splice: a chunk of the file copied over another place
            {
                int len = rng.Next(1, 512), from = rng.Next(data.Length - len), to = rng.Next(data.Length - len);
                Array.Copy(seed, from, data, to, len);
                return data;
            }
            case 3: // interesting values
            {
                byte[] values = { 0x00, 0xff, 0x7f, 0x80, 0x01 };
                for (int k = rng.Next(1, 5); k > 0; k--)
                {
                    int pos = rng.Next(Math.Min(data.Length, 8192));
                    int run = rng.Next(1, 9);
                    for (int j = 0; j < run && pos + j < data.Length; j++) data[pos + j] = values[rng.Next(values.Length)];
                }
                return data;
            }
            default: // insertion of random bytes
            {
                int pos = rng.Next(data.Length);
                var extra = new byte[rng.Next(1, 64)];
                rng.NextBytes(extra);
                return data[..pos].Concat(extra).Concat(data[pos..]).ToArray();
            }
        }
    }
}
