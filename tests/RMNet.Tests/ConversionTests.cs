using RMNet.Models;
using RMNet.Plain;
using RMNet.Rm;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;

namespace RMNet.Tests;

public class ConversionTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(Nets))]
    public void OriginalForwardMatchesPyTorch(string name)
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_($"{name}.pth"));
        using var module = ckpt.CreateModule();
        var io = Fixture.Io(name);
        foreach (var (x, y) in new[] { ("input", "output"), ("input_odd", "output_odd") })
        {
            var report = Equivalence.Measure(io[y], module.forward(io[x]), 1e-5);
            output.WriteLine($"{name} {x}: abs {report.MaxAbsError:E2} rel {report.MaxRelError:E2}");
            Assert.True(report.MaxAbsError < 1e-5, $"{name}/{x}: max abs error {report.MaxAbsError}");
        }
    }

    [Theory]
    [MemberData(nameof(NetsAndModes))]
    public void PlainMatchesPyTorch(string name, RmMode mode)
    {
        using var ckpt = ResNetCheckpoint.Load(Fixture.Path_($"{name}.pth"));
        var plain = ckpt.ToPlain(mode);
        var io = Fixture.Io(name);
        foreach (var (x, y) in new[] { ("input", "output"), ("input_odd", "output_odd") })
        {
            var report = Equivalence.Measure(io[y], plain.Forward(io[x]), 1e-4);
            output.WriteLine($"{name} {mode} {x}: abs {report.MaxAbsError:E2} rel {report.MaxRelError:E2} top1 {report.Top1Agreement}");
            Assert.True(report.Passed, $"{name}/{x}: max rel error {report.MaxRelError}");
            Assert.Equal(1.0, report.Top1Agreement);
        }
    }

    public static IEnumerable<object[]> Nets() => Fixture.SmallNets.Select(n => new object[] { n });

    public static IEnumerable<object[]> NetsAndModes() => Fixture.Cases(Fixture.SmallNets, RmMode.Grouped, RmMode.Dense);

    [Fact]
    public void GroupedFormIsSmallerForBottlenecksAndTheSameForBasicBlocks()
    {
        using var basic = ResNetCheckpoint.Load(Fixture.Path_("basic_narrow.pth"));
        Assert.Equal(basic.ToPlain(RmMode.Dense).ParameterCount, basic.ToPlain(RmMode.Grouped).ParameterCount);
        using var next = ResNetCheckpoint.Load(Fixture.Path_("resnext_narrow.pth"));
        Assert.True(next.ToPlain(RmMode.Grouped).ParameterCount < next.ToPlain(RmMode.Dense).ParameterCount / 2);
    }
}
