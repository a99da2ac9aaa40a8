using RMNet.IO;
using RMNet.Models;
using Xunit;
using Xunit.Abstractions;

namespace RMNet.Tests;

/// <summary>The shared family check fails loudly where a fixture gives it nothing to compare.</summary>
public class FamilyChecksTests(ITestOutputHelper output)
{
    [Fact]
    public void AFixtureWithoutItsInputFailsInsteadOfCheckingNothing()
    {
        using var dir = Fixture.Temp();
        var io = Fixture.Io("basic_narrow");
        StateDictFile.Save(dir.File("no_input.io.pth"), new[] { ("output", io["output"]), ("output_odd", io["output_odd"]) });
        using var model = SourceModels.Load(Fixture.Path_("basic_narrow.pth"));
        var e = Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => FamilyChecks.AssertMatchesPyTorch(model, dir.File("no_input"), output, "no input"));
        Assert.Contains("lacks 'input' or 'output'", e.Message);
    }
}
