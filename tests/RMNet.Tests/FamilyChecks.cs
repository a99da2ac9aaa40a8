using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Plain;
using RMNet.Rm;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;

namespace RMNet.Tests;

/// <summary>The check every family's fixture goes through: original, plain and plain-as-ONNX against PyTorch.</summary>
public static class FamilyChecks
{
    /// <summary>
    /// Runs the original (TorchSharp), the plain model (TorchSharp) and its ONNX export (ONNX Runtime) on the
    /// fixture's inputs; each must equal PyTorch's output (1e-5 for the original, 1e-4 for the plain forms) and the
    /// ONNX graph must hold no addition. Returns the plain model for further checks.
    /// </summary>
    public static PlainModel AssertMatchesPyTorch(ISourceModel model, string fixture, ITestOutputHelper output, string label, RmMode mode = RmMode.Grouped)
    {
        var io = Fixture.Io(fixture);
        using var module = model.CreateModule();
        var plain = model.ToPlain(mode);
        using var dir = Fixture.Temp();
        string path = dir.File("plain.onnx");
        ModelWriter.Save(plain, path);
        Assert.Empty(OnnxSummary.Read(path).Residuals);
        using var ort = new OnnxRuntimeRunner(path);
        // Every fixture has the main pair; the odd-sized pair is optional. A fixture without "input" would check nothing.
        Assert.True(io.ContainsKey("input") && io.ContainsKey("output"), $"{fixture}.io.pth lacks 'input' or 'output': nothing to check against");
        foreach (var (x, y) in new[] { ("input", "output"), ("input_odd", "output_odd") }.Where(p => io.ContainsKey(p.Item1)))
        {
            var original = Equivalence.Measure(io[y], module.forward(io[x]), 1e-5);
            var torch = Equivalence.Measure(io[y], plain.Forward(io[x]), 1e-4);
            var onnx = Equivalence.Measure(io[y], ort.Run(io[x]), 1e-4);
            output.WriteLine($"{label} {x}: original {original.MaxRelError:E2}, plain {torch.MaxRelError:E2} (abs {torch.MaxAbsError:E2}), onnx {onnx.MaxRelError:E2}");
            Assert.True(original.Passed, $"original rel {original.MaxRelError}");
            Assert.True(torch.Passed, $"plain rel {torch.MaxRelError}");
            Assert.True(onnx.Passed, $"onnx rel {onnx.MaxRelError}");
        }
        return plain;
    }
}
