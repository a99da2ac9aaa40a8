using Xunit;

namespace RMNet.Tests;

/// <summary>Every error the library raises on purpose shares one base, whose exit code rmnet uses.</summary>
public class ExceptionTests
{
    [Fact]
    public void LibraryErrorsShareOneBaseWithTheBadInputExitCode()
    {
        RMNetException[] errors = [new RmException("not exact"), new ModelInputException("model.pth", "bad key")];
        Assert.All(errors, e => Assert.Equal(Cli.ExitCodes.BadInput, e.ExitCode));
        Assert.Equal("model.pth: bad key", errors[1].Message);
    }
}
