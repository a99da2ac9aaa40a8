using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Plain;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>torchvision's MobileNetV2 made plain: exact including ReLU6, 1x1 convs merged.</summary>
public class MobileNetV2Tests(ITestOutputHelper output)
{
    static MobileNetV2Checkpoint Load() => Assert.IsType<MobileNetV2Checkpoint>(SourceModels.Load(Fixture.Path_("mobilenet_v2_narrow.pth")));

    /// <summary>The plain network's costs come in the original's stages (stem, blocks, head), which add up to the total (the trial found `total` alone).</summary>
    [Fact]
    public void ThePlainCostsComeInTheOriginalsStages()
    {
        using var ckpt = Load();
        using var plain = ckpt.ToPlain();
        var stages = plain.CostByStage(224, 224);
        Assert.Equal(new[] { "stem", "blocks", "head" }, stages.Select(s => s.Stage).Where(s => s != "total"));
        Assert.Equal(ckpt.CostByStage(224, 224).Select(s => s.Stage).Where(s => s != "total"), stages.Select(s => s.Stage).Where(s => s != "total"));
        Assert.Equal(plain.ParameterCount, stages.Where(s => s.Stage != "total").Sum(s => s.Parameters));
        Assert.Equal(plain.MultiplyAccumulates(224, 224), stages.Where(s => s.Stage != "total").Sum(s => s.Macs));
    }

    [Fact]
    public void PlainMatchesPyTorchInTorchSharpAndOnnxRuntime()
    {
        using var model = Load();
        Assert.Equal(17, model.BlockCount);
        // torchvision at width 0.25: blocks 1, 3, 5, 6, 8, 9, 10, 12, 13, 15, 16 add their input (block 1: 8 -> 8 channels).
        Assert.Equal(new[] { 1, 3, 5, 6, 8, 9, 10, 12, 13, 15, 16 }, model.Spec.Blocks.Where(b => b.Residual).Select(b => b.Index));
        FamilyChecks.AssertMatchesPyTorch(model, "mobilenet_v2_narrow", output, "mobilenet_v2");
    }

    [Fact]
    public void OneByOnePairsStayApartWhereMergingWouldCostMore()
    {
        using var model = Load();
        var plain = model.ToPlain();
        // A projection and the next 6x expansion merged would hold more weights than the pair (LinearConvMerge.Pays),
        // and so would the last projection and the final 1x1 conv: every original conv stays, plus the 1x1 [I ; I]
        // that carries block 1's input (duplicating the 8-channel stem's rows instead would cost more).
        Assert.Equal(52, model.Weights.Keys.Count(k => k.EndsWith(".weight") && model.Weights[k].dim() == 4));
        Assert.Equal(52 + 1, plain.Convs.Count());
        var kinds = plain.Layers.Select(l => l is ConvLayer c ? (c.KernelH == 1 ? "1x1" : "kxk") : l is ClampLayer ? "clamp" : "other").ToList();
        for (int i = 1; i < kinds.Count; i++)
            if (kinds[i - 1] != "clamp" && kinds[i - 1] != "other" && kinds[i] is "1x1" or "kxk")
                Assert.True(kinds[i - 1] == "1x1" || kinds[i] == "1x1", $"two convs in a row at layer {i}, neither 1x1");
    }

    [Fact]
    public void CarriedActivationsAboveSixPassUnclippedAndReluSixThereWouldBeWrong()
    {
        using var model = Load();
        var plain = model.ToPlain();
        var x = Fixture.Io("mobilenet_v2_narrow")["input"];
        // Run the plain layers one by one; after every clamp that carries a block input, look at the carried channels.
        float peak = float.NegativeInfinity;
        var h = x;
        foreach (var layer in plain.Layers)
        {
            h = new PlainModel(new[] { layer }, (int)h.shape[1]).Forward(h);
            using (NewDisposeScope())
                if (layer is ClampLayer c && c.Lower.isinf().any().item<bool>())
                    peak = Math.Max(peak, h[TensorIndex.Colon, TensorIndex.Slice(0, c.Lower.isinf().sum().item<long>())].max().item<float>());
        }
        output.WriteLine($"carried channels after the clamps: max {peak:F2} (> 6 passes unclipped)");
        Assert.True(peak > 6f);

        // The simplified approach (ReLU6 on every channel, reserved ones included) is not equivalent here.
        var relu6Everywhere = plain.WithLayers(
            plain.Layers.Select(l => l is ClampLayer c ? new ClampLayer(zeros_like(c.Lower), full_like(c.Upper, 6f)) : l).ToList());
        var io = Fixture.Io("mobilenet_v2_narrow");
        var wrong = Equivalence.Measure(io["output"], relu6Everywhere.Forward(x), 1e-4);
        output.WriteLine($"ReLU6 on reserved channels: rel error {wrong.MaxRelError:E2}");
        Assert.False(wrong.Passed);
        Assert.True(wrong.MaxRelError > 1e-3, $"{wrong.MaxRelError}");   // tens of times the tolerance
    }
}

public class MobileNetV2CliTests
{
    [Fact]
    public void CliConvertsVerifiesAndInspects()
    {
        using var dir = Fixture.Temp();
        CliHarness.ConvertVerified(Fixture.Path_("mobilenet_v2_narrow.pth"), dir.File("m.onnx"), 64);
        var ops = OnnxSummary.Read(dir.File("m.onnx")).OpCounts;
        Assert.True(ops.ContainsKey("Max") && ops.ContainsKey("Min"));
        Assert.Equal("mobilenet_v2", CliHarness.Inspect(Fixture.Path_("mobilenet_v2_narrow.pth")).GetProperty("family").GetString());
    }
}
