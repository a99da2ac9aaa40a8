using BenchmarkDotNet.Attributes;
using RMNet;
using RMNet.Models;
using RMNet.Rm;
using RMNet.Weights;

namespace RMNet.Benchmarks;

/// <summary>BN fusion over a whole ResNet-50, and the RM transform of single blocks of each kind.</summary>
[MemoryDiagnoser]
public class BlockBenchmarks
{
    StateDict _sd = null!;
    ResNetSpec _spec = null!;
    BlockSpec _bottleneck = null!, _basic = null!, _resnext = null!;
    StateDict _sd18 = null!, _sdNext = null!;
    ResNetSpec _spec18 = null!, _specNext = null!;

    [GlobalSetup]
    public void Setup()
    {
        _spec = ResNetSpec.Named("resnet50");
        _sd = RandomResNet.Create(_spec, 1);
        _bottleneck = _spec.Blocks().First(b => b.Prefix == "layer3.0");
        _spec18 = ResNetSpec.Named("resnet18");
        _sd18 = RandomResNet.Create(_spec18, 1);
        _basic = _spec18.Blocks().First(b => b.Prefix == "layer3.0");
        _specNext = ResNetSpec.Named("resnext50_32x4d");
        _sdNext = RandomResNet.Create(_specNext, 1);
        _resnext = _specNext.Blocks().First(b => b.Prefix == "layer3.0");
    }

    [Benchmark(Description = "BN fusion, all 53 conv+BN pairs of ResNet-50")]
    public void FuseAllBatchNorms()
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        TorchvisionWeights.ConvBn(_sd, "conv1", "bn1", 2, 3);
        foreach (var b in _spec.Blocks())
        {
            TorchvisionWeights.Branch(_sd, _spec, b);
            TorchvisionWeights.Projection(_sd, b);
        }
    }

    [Benchmark(Description = "RM BasicBlock (resnet18 layer3.0, projection)")]
    public void BasicBlock() => Block(_sd18, _spec18, _basic, RmMode.Grouped);

    [Benchmark(Description = "RM Bottleneck dense (resnet50 layer3.0)")]
    public void BottleneckDense() => Block(_sd, _spec, _bottleneck, RmMode.Dense);

    [Benchmark(Description = "RM Bottleneck grouped (resnet50 layer3.0)")]
    public void BottleneckGrouped() => Block(_sd, _spec, _bottleneck, RmMode.Grouped);

    [Benchmark(Description = "RM ResNeXt grouped (resnext50_32x4d layer3.0)")]
    public void ResNeXtGrouped() => Block(_sdNext, _specNext, _resnext, RmMode.Grouped);

    static void Block(StateDict sd, ResNetSpec spec, BlockSpec block, RmMode mode)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        ResidualChainRm.Transform(TorchvisionWeights.Branch(sd, spec, block), TorchvisionWeights.Projection(sd, block), mode);
    }
}

/// <summary>The whole in-process conversion of a loaded checkpoint.</summary>
[MemoryDiagnoser]
public class EndToEndBenchmarks
{
    ResNetCheckpoint _r50 = null!, _r18 = null!;

    [GlobalSetup]
    public void Setup()
    {
        _r50 = ResNetCheckpoint.FromStateDict(RandomResNet.Create(ResNetSpec.Named("resnet50"), 1));
        _r18 = ResNetCheckpoint.FromStateDict(RandomResNet.Create(ResNetSpec.Named("resnet18"), 1));
    }

    [Params(RmMode.Dense, RmMode.Grouped)]
    public RmMode Mode { get; set; }

    [Benchmark(Description = "convert ResNet-50")]
    public void ResNet50() => Dispose(_r50.ToPlain(Mode));

    [Benchmark(Description = "convert ResNet-18")]
    public void ResNet18() => Dispose(_r18.ToPlain(Mode));

    static void Dispose(RMNet.Plain.PlainModel model)
    {
        foreach (var c in model.Convs) { c.Weight.Dispose(); c.Bias.Dispose(); }
    }
}
