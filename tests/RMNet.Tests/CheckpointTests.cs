using RMNet.IO;
using RMNet.Models;
using RMNet.Verification;
using Xunit;

namespace RMNet.Tests;

public class CheckpointTests
{
    /// <summary>
    /// A checkpoint missing a head tensor is named as missing it, in its own family: the trial found an IResNet without
    /// 'features.running_var' reported as a CIFAR ResNet with a wrong shape, and a pre-activation net without 'bn.weight'
    /// as missing 'fc.weight'.
    /// </summary>
    [Theory]
    [InlineData("iresnet18_narrow.pth", "features.running_var")]
    [InlineData("preact_basic_narrow.pth", "bn.weight")]
    public void AMissingHeadTensorIsNamedInItsOwnFamily(string fixture, string key)
    {
        using var dir = Fixture.Temp();
        using (var sd = CheckpointReader.Read(Fixture.Path_(fixture)))
            StateDictFile.Save(dir.File("missing.pth"), sd.Where(kv => kv.Key != key).Select(kv => (kv.Key, kv.Value)));
        var (code, _, stderr) = CliHarness.Rmnet("convert", dir.File("missing.pth"), "-o", dir.File("plain.onnx"));
        Assert.Equal(2, code);
        Assert.Contains($"missing key '{key}'", stderr);
        // verify (which builds the original as a module: an internal error once) and inspect say the same.
        Assert.Equal(0, CliHarness.Rmnet("convert", Fixture.Path_(fixture), "-o", dir.File("good.onnx"), "--quiet").Code);
        foreach (var command in new[] { new[] { "verify", dir.File("missing.pth"), dir.File("good.onnx") }, new[] { "inspect", dir.File("missing.pth") } })
        {
            var (c, _, e) = CliHarness.Rmnet(command);
            Assert.Equal(2, c);
            Assert.Contains($"missing key '{key}'", e);
        }
    }

    [Theory]
    [InlineData("basic_narrow_wrapped.pth.tar", "basic_narrow")]   // {'state_dict': {'module.' + key}} with optimizer state
    [InlineData("bottleneck_narrow_model.pt", "bottleneck_narrow")] // {'model': state_dict}
    [InlineData("basic_narrow.safetensors", "basic_narrow")]
    public void WrappedAndSafetensorsCheckpointsConvertToPyTorchOutput(string file, string reference)
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_(file));
        Assert.DoesNotContain(ckpt.Weights.Keys, k => k.StartsWith("module."));
        var io = Fixture.Io(reference);
        var report = Equivalence.Measure(io["output"], ckpt.ToPlain().Forward(io["input"]), 1e-4);
        Assert.True(report.Passed, $"rel {report.MaxRelError}");
    }

    [Fact]
    public void DetectsLayoutFromNamesAndShapes()
    {
        using var basic = ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"));
        Assert.Equal(BlockKind.Basic, basic.Spec.Block);
        Assert.Equal(new[] { 2, 1, 1, 1 }, basic.Spec.Layers);
        Assert.Equal(new[] { 8, 16, 32, 64 }, basic.Spec.Widths);
        Assert.Equal(10, basic.Spec.NumClasses);

        using var next = ResNetCheckpoint.Load(Fixture.Path_("resnext_narrow.pth"));
        Assert.Equal(BlockKind.Bottleneck, next.Spec.Block);
        Assert.Equal(2, next.Spec.Groups);
        Assert.Equal(new[] { 1, 1, 2, 1 }, next.Spec.Layers);
        Assert.Equal(new[] { 4, 8, 16, 32 }, next.Spec.Widths);   // int(planes * 16/64) * 2
        Assert.Equal(5, next.Spec.NumClasses);
    }

    [Theory]
    [InlineData("resnet18")]
    [InlineData("resnet50")]
    [InlineData("resnext101_64x4d")]
    [InlineData("wide_resnet50_2")]
    public void DetectsNamedTorchvisionLayouts(string name)
    {
        using var sd = RandomResNet.Create(ResNetSpec.Named(name, 37), 1);
        Assert.Equal(name, ResNetDetector.Detect(sd).Name);
        Assert.Equal(37, ResNetDetector.Detect(sd).NumClasses);
    }

    [Fact]
    public void NonResNetStateDictNamesTheFirstKeyThatDoesNotFit()
    {
        var sd = new StateDict("vgg.pth");
        sd.Add("features.0.weight", TorchSharp.torch.zeros(64, 3, 3, 3));
        var e = Assert.Throws<ModelInputException>(() => ResNetDetector.Detect(sd));
        Assert.Contains("features.0.weight", e.Message);
        Assert.StartsWith("vgg.pth: ", e.Message);
    }

    [Fact]
    public void WrongShapeNamesKeyAndShapes()
    {
        using var sd = RandomResNet.Create(ResNetSpec.Named("resnet18", 10), 1);
        var bad = new StateDict("bad.pth");
        foreach (var (k, v) in sd) bad.Add(k, k == "layer2.0.bn1.running_var" ? TorchSharp.torch.ones(7) : v);
        var e = Assert.Throws<ModelInputException>(() => ResNetDetector.Detect(bad));
        Assert.Contains("'layer2.0.bn1.running_var' has shape [7]", e.Message);
    }

    [Fact]
    public void UnexpectedKeyIsReported()
    {
        using var sd = RandomResNet.Create(ResNetSpec.Named("resnet18", 10), 1);
        sd.Add("layer1.0.extra.weight", TorchSharp.torch.ones(3));
        var e = Assert.Throws<ModelInputException>(() => ResNetDetector.Detect(sd));
        Assert.Contains("unexpected key 'layer1.0.extra.weight'", e.Message);
    }

    [Fact]
    public void ArchAndNumClassesThatContradictTheCheckpointAreRefused()
    {
        var arch = Assert.Throws<ModelInputException>(() => ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"), "resnet18"));
        Assert.Contains("conv1.weight", arch.Message);
        var classes = Assert.Throws<ModelInputException>(() => ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"), numClasses: 1000));
        Assert.Contains("--num-classes 1000", classes.Message);
        Assert.Contains("10 outputs", classes.Message);
    }

    [Fact]
    public void NamedArchAcceptsMatchingCheckpoint()
    {
        using var sd = RandomResNet.Create(ResNetSpec.Named("resnet34", 12), 3);
        using var ckpt = ResNetCheckpoint.FromStateDict(sd, "resnet34", 12);
        Assert.Equal("resnet34", ckpt.Spec.Name);
        Assert.Equal(16, ckpt.Spec.Blocks().Count());
    }
}
