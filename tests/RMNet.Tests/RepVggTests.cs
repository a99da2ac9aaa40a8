using System.Text.Json;
using RMNet.Blocks;
using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

/// <summary>RepVGG: train-time checkpoints (official names) to the deploy form, against PyTorch's outputs.</summary>
public class RepVggTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("repvgg_narrow.pth")]
    [InlineData("repvgg_narrow_deploy.pth")]   // re-parameterised in PyTorch by the fixture script
    public void OriginalAndDeployFormMatchPyTorch(string file)
    {
        using var model = SourceModels.Load(Fixture.Path_(file));
        var repvgg = Assert.IsType<RepVggCheckpoint>(model);
        Assert.Equal("repvgg", model.Family);
        Assert.Equal(8, model.BlockCount);
        Assert.Equal(new[] { 1, 1, 2, 1, 2, 1, 1, 1 }, repvgg.Spec.Blocks.Select(b => b.Groups));  // official layer numbering: 2 and 4 grouped
        var io = Fixture.Io("repvgg_narrow");
        using var module = model.CreateModule();
        var plain = model.ToPlain();
        Assert.Equal(8, plain.Convs.Count());
        foreach (var (x, y) in new[] { ("input", "output"), ("input_odd", "output_odd") })
        {
            var original = Equivalence.Measure(io[y], module.forward(io[x]), 1e-5);
            var converted = Equivalence.Measure(io[y], plain.Forward(io[x]), 1e-4);
            output.WriteLine($"{file} {x}: original rel {original.MaxRelError:E2}, plain rel {converted.MaxRelError:E2}");
            Assert.True(original.Passed, $"original rel {original.MaxRelError}");
            Assert.True(converted.Passed, $"plain rel {converted.MaxRelError}");
            Assert.Equal(1.0, converted.Top1Agreement);
        }
    }

    [Fact]
    public void OnnxExportRunsInOnnxRuntimeAndEqualsPyTorch()
    {
        using var model = SourceModels.Load(Fixture.Path_("repvgg_narrow.pth"));
        using var dir = Fixture.Temp();
        string path = dir.File("deploy.onnx");
        ModelWriter.Save(model.ToPlain(), path);
        using var ort = new OnnxRuntimeRunner(path);
        var io = Fixture.Io("repvgg_narrow");
        var report = Equivalence.Measure(io["output"], ort.Run(io["input"]), 1e-4);
        output.WriteLine($"ONNX Runtime vs PyTorch: rel {report.MaxRelError:E2}");
        Assert.True(report.Passed);
        Assert.Empty(OnnxSummary.Read(path).Residuals);
    }

    [Theory]
    [InlineData("RepVGG-A0", 8.30)]     // deploy-form parameter counts in millions, truncated as the RepVGG paper lists them
    [InlineData("RepVGG-B1g2", 41.36)]
    [InlineData("RepVGG-B3", 110.96)]
    public void NamedVariantsAreRecognisedFromShapes(string name, double deployMillions)
    {
        using var module = new RepVgg(RepVggSpec.Named(name, 1000));
        var sd = new StateDict("random " + name);
        foreach (var (k, v) in module.state_dict()) sd.Add(k, v);
        var detected = RepVggSpec.Detect(sd);
        Assert.Equal(name, detected.Name);
        using var model = RepVggCheckpoint.FromStateDict(sd);
        Assert.Equal(deployMillions, Math.Floor(model.ToPlain().ParameterCount / 1e4) / 100);
    }

    [Fact]
    public void CliConvertsAndInspectsRepVgg()
    {
        using var dir = Fixture.Temp();
        var root = CliHarness.ConvertVerified(Fixture.Path_("repvgg_narrow.pth"), dir.File("d.onnx"), 64);
        Assert.Equal(8, root.GetProperty("blocks").GetInt32());
        var r = CliHarness.Inspect(Fixture.Path_("repvgg_narrow.pth"));
        Assert.Equal("repvgg", r.GetProperty("family").GetString());
        Assert.Equal("multi-branch", r.GetProperty("form").GetString());
        Assert.Equal(2, Rmnet("convert", Fixture.Path_("repvgg_narrow.pth"), "-o", dir.File("e.onnx"), "--arch", "resnet18", "--quiet").Code);
    }
}

public class RepVggOnnxTests(ITestOutputHelper output)
{
    [Fact]
    public void TrainTimeRepVggExportBecomesTheDeployFormInTheGraph()
    {
        string input = Fixture.Path_("onnx/repvgg_narrow_opset13.onnx");
        var result = OnnxConversion.Convert(input);
        Assert.Equal(8, result.MergedBranches);   // every block's three (or two) branches, one conv each
        Assert.Empty(result.Blocks);               // no residual blocks in RepVGG
        using var dir = Fixture.Temp();
        string path = dir.File("deploy.onnx");
        OnnxModelFile.Save(result.Model, path);
        var ops = OnnxSummary.Read(path).OpCounts;
        Assert.False(ops.ContainsKey("Add") || ops.ContainsKey("BatchNormalization"));
        Assert.Equal(8, ops["Conv"]);
        var report = Verifier.Verify(input, path, new VerifyOptions(Samples: 3, InputSize: 64));
        output.WriteLine($"ONNX Runtime train-time graph vs merged graph: rel {report.MaxRelError:E2}");
        Assert.True(report.Passed, $"rel {report.MaxRelError}");
        // And against PyTorch's own output.
        using var ort = new OnnxRuntimeRunner(path);
        var io = Fixture.Io("repvgg_narrow");
        Assert.True(Equivalence.Measure(io["output"], ort.Run(io["input"]), 1e-4).Passed);
    }

    [Fact]
    public void MergedWeightsTakeNamesTheGraphDoesNotUseYet()
    {
        string input = Fixture.Path_("onnx/repvgg_narrow_opset13.onnx");
        string taken = GraphBranchMerge.Run(OnnxModelFile.Load(input), input).Model.Graph.Initializer.Select(t => t.Name).First(n => n.EndsWith("_merged_weight"));
        var model = OnnxModelFile.Load(input);
        // The classifier's weight renamed to the name the first merged conv's weight would otherwise be given.
        var classifier = model.Graph.Node.First(n => n.OpType is "Gemm" or "MatMul");
        var weight = model.Graph.Initializer.Single(t => t.Name == classifier.Input[1]);
        weight.Name = taken;
        classifier.Input[1] = taken;
        using var dir = Fixture.Temp();
        OnnxModelFile.Save(model, dir.File("named.onnx"));

        var (merged, count) = GraphBranchMerge.Run(OnnxModelFile.Load(dir.File("named.onnx")), "named.onnx");
        Assert.Equal(8, count);
        var names = merged.Graph.Initializer.Select(t => t.Name).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
        OnnxModelFile.Save(merged, dir.File("deploy.onnx"));
        var report = Verifier.Verify(dir.File("named.onnx"), dir.File("deploy.onnx"), new VerifyOptions(Samples: 2, InputSize: 64));
        output.WriteLine($"renamed classifier: rel {report.MaxRelError:E2}");
        Assert.True(report.Passed, $"rel {report.MaxRelError}");
    }

    [Fact]
    public void ResNetGraphsAreNotMistakenForBranchSums()
    {
        var (_, merged) = GraphBranchMerge.Run(OnnxModelFile.Load(Fixture.Path_("onnx/resnext_narrow_opset13.onnx")), "resnext");
        Assert.Equal(0, merged);
    }
}
