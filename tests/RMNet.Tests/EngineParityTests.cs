using Onnx;
using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Rm;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// One network, two front ends: a ResNet checkpoint fixture and PyTorch's ONNX export of the same module must
/// convert to the same plain network (the same operators in the same order, every conv and linear weight and bias
/// equal within 1e-6 relative), in both RM forms.
/// </summary>
public class EngineParityTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases() =>
        from name in new[] { "basic_narrow", "bottleneck_narrow", "resnext_narrow", "wide_narrow" }
        from mode in new[] { RmMode.Grouped, RmMode.Dense }
        select new object[] { name, mode };

    [Theory]
    [MemberData(nameof(Cases))]
    public void CheckpointAndOnnxExportGiveTheSamePlainNetwork(string name, RmMode mode)
    {
        using var dir = Fixture.Temp();
        using var ckpt = SourceModels.Load(Fixture.Path_($"{name}.pth"));
        string fromCheckpoint = dir.File("ckpt.onnx");
        ModelWriter.Save(ckpt.ToPlain(mode), fromCheckpoint);
        var a = OnnxModelFile.Load(fromCheckpoint).Graph;
        var b = OnnxConversion.Convert(Fixture.Path_($"onnx/{name}_ckpt_opset13.onnx"), mode).Model.Graph;

        var opsA = new OnnxGraph(a, "ckpt").Order.Select(n => n.OpType).ToList();
        var opsB = new OnnxGraph(b, "onnx").Order.Select(n => n.OpType).ToList();
        Assert.Equal(string.Join(" ", opsA), string.Join(" ", opsB));

        double worst = 0;
        foreach (var (na, nb) in Weighted(a).Zip(Weighted(b)))
        {
            Assert.Equal(na.Attribute.Select(x => x.ToString()).Where(x => !x.Contains("dilations")).OrderBy(x => x),
                nb.Attribute.Select(x => x.ToString()).Where(x => !x.Contains("dilations")).OrderBy(x => x));
            for (int i = 1; i < Math.Min(na.Input.Count, nb.Input.Count); i++)
            {
                var ta = Tensor(a, na.Input[i]);
                var tb = Tensor(b, nb.Input[i]);
                Assert.Equal(ta.shape, tb.shape);
                double rel = (ta - tb).abs().max().item<double>() / Math.Max(ta.abs().max().item<double>(), 1e-30);
                worst = Math.Max(worst, rel);
                Assert.True(rel <= 1e-6, $"{na.Name} input {i}: rel {rel:E2}");
            }
        }
        output.WriteLine($"{name} {mode}: {opsA.Count} nodes, largest weight difference {worst:E2} relative");
    }

    static IEnumerable<NodeProto> Weighted(GraphProto g) => new OnnxGraph(g, "g").Order.Where(n => n.OpType is "Conv" or "Gemm");

    static Tensor Tensor(GraphProto g, string name) => OnnxTensors.ToTensor(g.Initializer.Single(t => t.Name == name), "g");
}
