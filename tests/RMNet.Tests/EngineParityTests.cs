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
/// One network, two front ends: a checkpoint fixture and PyTorch's ONNX export of the same module must convert to
/// the same plain network (the same operators in the same order, every conv and linear weight and bias equal within
/// 1e-6 relative), in both RM forms, for every family fixture (RepVGG's too, whose export is of the saved module), and, where a block input may be negative (pre-activation ResNets, IResNet), in both
/// negative-input modes. ResNets (basic, bottleneck, ResNeXt, wide), pre-activation ResNets, SE-ResNets, IResNet and MobileNetV2.
/// The ResNet exports are `{name}_ckpt_opset13.onnx` (make_fixtures.py --parity, and --parity-cifar for the CIFAR layouts,
/// one of them channel-pruned per block); the other families' exports
/// `{name}_opset13.onnx` were written from the very module saved as the checkpoint (--preact, --se, --iresnet, --mobilenet,
/// and --lowered / --hf / --regnet / --timm-repvgg / --reparam for timm's ResNet-D, Hugging Face's ResNet, torchvision's RegNetX and RegNetY, timm's RepVGG
/// and MobileOne and the ACB MobileNet, and --dbb-resnet for the ACB ResNets, whose checkpoints are lowered into the graph that the passes then
/// convert; --acnet-rcnet and --acnet-resnet for ACNet's own RCNet and ImageNet ResNet). The DBB MobileNet's and Bottleneck ResNet's exports are `{name}_default.onnx` (--reparam, --dbb-resnet: PyTorch's default export,
/// with the input's fixed shape, whose BNAndPad slice assignments the passes read as padding where that shape is fixed; see DbbExportTests).
/// </summary>
public class EngineParityTests(ITestOutputHelper output)
{
    static readonly string[] ResNets = { "basic_narrow", "bottleneck_narrow", "resnext_narrow", "wide_narrow", "cifar_narrow", "cifar_pruned" };

    public static IEnumerable<object[]> Cases() =>
        from name in ResNets.Concat(new[] { "preact_basic_narrow", "preact_bottleneck_narrow", "se_basic_narrow", "se_bottleneck_narrow", "iresnet18_narrow", "mobilenet_v2_narrow",
            "timm_resnet_d_basic_narrow", "timm_resnet_d_bottleneck_narrow", "timm_seresnext_d_narrow", "timm_ecaresnet_d_narrow", "hf_resnet_basic_narrow", "hf_resnet_bottleneck_narrow", "regnet_x_narrow", "regnet_y_se_narrow", "timm_repvgg_narrow", "repvgg_narrow", "timm_mobileone_se_narrow",
            "timm_mobileone_narrow", "acnet_mobilenet_narrow", "acnet_resnet_basic_narrow", "acnet_resnet_bottleneck_narrow", "dbb_mobilenet_narrow",
            "dbb_resnet_bottleneck_narrow", "acnet_rcnet_narrow", "acnet_imagenet_resnet_narrow" })
        from mode in new[] { RmMode.Grouped, RmMode.Dense }
        from negative in name.StartsWith("preact") || name.StartsWith("iresnet") ? new[] { NegativeInputMode.PRelu, NegativeInputMode.Split } : new[] { NegativeInputMode.PRelu }
        select new object[] { name, mode, negative };

    /// <summary>
    /// The operators in graph order, the global average pool written one way: PyTorch exports <c>x.mean((2, 3))</c>
    /// (the pre-activation nets' head) as one ReduceMean, the checkpoint engine writes GlobalAveragePool + Reshape;
    /// the same function (as is timm's <c>x.mean((2, 3), keepdim=True)</c> then flatten, ReduceMean + Reshape, and the DBB
    /// repository's <c>out.view(out.size(0), -1)</c>, whose target shape the export computes from the input's: Shape,
    /// Gather, Unsqueeze, Concat before the Reshape). ACNet's RCNet pools with <c>avg_pool2d(out, 8, 1, 0)</c> and its
    /// ImageNet ResNet with <c>AvgPool2d(7, 7)</c>, exported as a zero Pad and a fixed AveragePool: on the only inputs
    /// their linear layers accept (last map 8x8, 7x7), the global pool.
    /// </summary>
    static string Ops(GraphProto g, string name) =>
        System.Text.RegularExpressions.Regex.Replace(string.Join(" ", new OnnxGraph(g, name).Order.Select(n => n.OpType)), "(Constant )?Shape (Constant )?Gather (Constant )?Unsqueeze (Constant )?Concat ", "")
            .Replace("GlobalAveragePool Reshape", "ReduceMean").Replace("ReduceMean Reshape", "ReduceMean")
            .Replace("Pad AveragePool Reshape", "ReduceMean");

    [Theory]
    [MemberData(nameof(Cases))]
    public void CheckpointAndOnnxExportGiveTheSamePlainNetwork(string name, RmMode mode, NegativeInputMode negative)
    {
        using var dir = Fixture.Temp();
        var a = FromCheckpoint(Fixture.Path_($"{name}.pth"), mode, negative, dir.File("ckpt.onnx"));
        string export = ResNets.Contains(name) ? $"{name}_ckpt_opset13" : name.StartsWith("dbb") ? $"{name}_default" : $"{name}_opset13";
        var b = OnnxConversion.Convert(Fixture.Path_($"onnx/{export}.onnx"), mode, negative: negative).Model.Graph;

        string opsA = Ops(a, "ckpt"), opsB = Ops(b, "onnx");
        Assert.Equal(opsA, opsB);

        double worst = 0;
        foreach (var (na, nb) in Weighted(a).Zip(Weighted(b)))
        {
            if (na.OpType is "Conv" or "Gemm")
                Assert.Equal(na.Attribute.Select(x => x.ToString()).Where(x => !x.Contains("dilations")).OrderBy(x => x),
                    nb.Attribute.Select(x => x.ToString()).Where(x => !x.Contains("dilations")).OrderBy(x => x));
            for (int i = na.OpType is "Conv" or "Gemm" ? 1 : 0; i < Math.Min(na.Input.Count, nb.Input.Count); i++)
            {
                if (!IsInitializer(a, na.Input[i]) && !IsInitializer(b, nb.Input[i])) continue;
                var ta = Tensor(a, na.Input[i]);
                var tb = Tensor(b, nb.Input[i]);
                Assert.Equal(ta.shape, tb.shape);
                // Clamp bounds are infinite on carried channels: the same infinities, then the finite values compared.
                Assert.True(ta.isinf().eq(tb.isinf()).all().item<bool>() && ta.eq(tb).logical_or(ta.isfinite()).all().item<bool>(), $"{na.Name} input {i}: infinite bounds differ");
                ta = ta.nan_to_num(0, 0, 0);
                tb = tb.nan_to_num(0, 0, 0);
                double rel = (ta - tb).abs().max().item<double>() / Math.Max(ta.abs().max().item<double>(), 1e-30);
                worst = Math.Max(worst, rel);
                Assert.True(rel <= 1e-6, $"{na.Name} input {i}: rel {rel:E2}");
            }
        }
        Assert.Equal(Weighted(a).Count(), Weighted(b).Count());
        output.WriteLine($"{name} {mode} {negative}: {opsA.Split(' ').Length} nodes, largest weight difference {worst:E2} relative");
    }

    /// <summary>The plain graph a checkpoint converts to: through its family's transform, or lowered into the graph and through the passes.</summary>
    static GraphProto FromCheckpoint(string path, RmMode mode, NegativeInputMode negative, string written)
    {
        var sd = CheckpointReader.Read(path);
        if (RMNet.Lowering.CheckpointLowerings.Find(sd) is { } lowered)
            using (lowered)
                return OnnxConversion.Convert(lowered.Lower(), path, mode, negative: negative).Model.Graph;
        using var ckpt = SourceModels.FromStateDict(sd, negative: negative);
        using var plain = ckpt.ToPlain(mode);
        ModelWriter.Save(plain, written);
        return OnnxModelFile.Load(written).Graph;
    }

    /// <summary>Nodes with weights or per-channel constants: convs, linear layers, PReLU slopes, clamp bounds, the SE gate's constants.</summary>
    static IEnumerable<NodeProto> Weighted(GraphProto g) =>
        new OnnxGraph(g, "g").Order.Where(n => n.OpType is "Conv" or "Gemm" or "PRelu" or "Max" or "Min" or "Clip" or "Add" or "Mul");

    static bool IsInitializer(GraphProto g, string name) => g.Initializer.Any(t => t.Name == name);

    static Tensor Tensor(GraphProto g, string name) => OnnxTensors.ToTensor(g.Initializer.Single(t => t.Name == name), "g");
}
