using RMNet.Models;
using RMNet.Plain;
using Xunit;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// A <see cref="PlainModel"/> owns its weights; a module made by <see cref="PlainModel.ToModule"/> shares them through
/// references of its own, so either can be disposed first.
/// </summary>
public class PlainModelDisposalTests
{
    static Tensor Input() => rand(new long[] { 2, 3, 32, 32 }, generator: new Generator(0));

    [Fact]
    public void AModuleKeepsRunningAfterItsModelIsDisposed()
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"));
        var plain = ckpt.ToPlain();
        var x = Input();
        var expected = plain.Forward(x);
        using var module = plain.ToModule();
        var layers = plain.Layers;
        plain.Dispose();
        Assert.True(layers.OfType<ConvLayer>().All(c => c.Weight.IsInvalid), "the model's own references are freed");
        Assert.Equal(0.0, (module.forward(x) - expected).abs().max().item<float>());
    }

    [Fact]
    public void AModelKeepsRunningAfterItsModuleIsDisposed()
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"));
        using var plain = ckpt.ToPlain();
        var x = Input();
        var expected = plain.Forward(x);
        plain.ToModule().Dispose();
        Assert.Equal(0.0, (plain.Forward(x) - expected).abs().max().item<float>());
        Assert.DoesNotContain(plain.Layers.OfType<ConvLayer>(), c => c.Weight.IsInvalid);
    }

    [Fact]
    public void ADisposedModelRefusesToMakeModulesAndMayBeDisposedAgain()
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"));
        var plain = ckpt.ToPlain();
        plain.Dispose();
        plain.Dispose();
        Assert.Throws<ObjectDisposedException>(() => plain.ToModule());
        Assert.Throws<ObjectDisposedException>(() => plain.Forward(Input()));
        Assert.Throws<ObjectDisposedException>(() => plain.ParameterCount);
        using var dir = new TempDir();
        Assert.Throws<ObjectDisposedException>(() => IO.ModelWriter.Save(plain, dir.File("plain.onnx")));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void ADisposedRunnerSaysSo()
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"));
        using var plain = ckpt.ToPlain();
        var runner = Verification.ModelRunner.ForModule(plain.ToModule());
        runner.Dispose();
        Assert.Throws<ObjectDisposedException>(() => runner.Run(Input()));
    }

    [Fact]
    public void DisposingThePlainModelLeavesTheCheckpointWhole()
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"));
        using (ckpt.ToPlain()) { }
        Assert.DoesNotContain(ckpt.Weights.Values, t => t.IsInvalid);
        using var module = ckpt.CreateModule();
        Assert.Equal(new long[] { 2, ckpt.NumClasses }, module.forward(Input()).shape);
    }
}
