namespace RMNet;

/// <summary>
/// The base of every error the library raises on purpose (bad input, a model that cannot be transformed
/// exactly); anything else escaping the library is a bug. <see cref="ExitCode"/> is the exit code a
/// command-line front end gives the error (<c>rmnet</c> uses it).
/// </summary>
/// <example>
/// <code>
/// try { /* load, convert, verify, save */ }
/// catch (RMNetException e) { Console.Error.WriteLine(e.Message); return e.ExitCode; }
/// </code>
/// </example>
public abstract class RMNetException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The exit code for bad input or usage, and for a model that cannot be transformed exactly.</summary>
    public const int BadInputExitCode = 2;

    /// <summary>The process exit code for this error: <see cref="BadInputExitCode"/> for every error the library raises.</summary>
    public virtual int ExitCode => BadInputExitCode;
}

/// <summary>A model or block that cannot be transformed exactly, with the reason.</summary>
public class RmException(string message) : RMNetException(message);

/// <summary>Bad input: a file, key, shape or option that does not fit. Carries the file it concerns.</summary>
public class ModelInputException(string file, string message, Exception? inner = null)
    : RMNetException($"{file}: {message}", inner)
{
    /// <summary>The file the problem was found in.</summary>
    public string File { get; } = file;

    /// <summary>The problem, without the file name.</summary>
    public string Problem { get; } = message;
}
