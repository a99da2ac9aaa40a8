using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Rm;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;

namespace RMNet.Tests;

/// <summary>
/// The foundation's acceptance case in CI: a full-size torchvision ResNet-50 (closed-form weights shared with
/// the fixture script) converted to ONNX, whose ONNX Runtime output must equal PyTorch's output of the original.
/// </summary>
public class FullResNet50Tests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(RmMode.Dense, 277_000_000, 277_700_000)]    // docs/design.md section 9: 277.3M
    [InlineData(RmMode.Grouped, 94_900_000, 95_100_000)]    // 95.0M
    public void Resnet50OnnxEqualsPyTorch(RmMode mode, long minParams, long maxParams)
    {
        using var ckpt = ResNetCheckpoint.FromStateDict(FormulaCheckpoint.Create(ResNetSpec.Named("resnet50")));
        Assert.Equal("resnet50", ckpt.Spec.Name);
        var x = FormulaCheckpoint.Input(new long[] { 1, 3, 224, 224 });
        var pytorch = Fixture.Io("formula_resnet50")["output"];

        using (var module = ckpt.CreateModule())
        {
            var ours = Equivalence.Measure(pytorch, module.forward(x), 1e-5);
            output.WriteLine($"original forward vs PyTorch: abs {ours.MaxAbsError:E2} rel {ours.MaxRelError:E2}");
            Assert.True(ours.Passed, $"original forward differs from PyTorch: rel {ours.MaxRelError}");
        }

        var plain = ckpt.ToPlain(mode);
        Assert.InRange(plain.ParameterCount, minParams, maxParams);
        using var dir = Fixture.Temp();
        string path = dir.File("resnet50-plain.onnx");
        ModelWriter.Save(plain, path);
        var summary = OnnxSummary.Read(path);
        Assert.Empty(summary.Residuals);
        using var ort = new OnnxRuntimeRunner(path);
        var report = Equivalence.Measure(pytorch, ort.Run(x), 1e-4);
        output.WriteLine($"{mode}: {plain.ParameterCount} params; ONNX Runtime plain vs PyTorch original: abs {report.MaxAbsError:E2} rel {report.MaxRelError:E2} top1 {report.Top1Agreement}");
        Assert.True(report.Passed, $"rel error {report.MaxRelError}");
        Assert.Equal(1.0, report.Top1Agreement);
    }
}
