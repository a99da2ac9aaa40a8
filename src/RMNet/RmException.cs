namespace RMNet;

/// <summary>A model or block that cannot be transformed exactly, with the reason.</summary>
public class RmException(string message) : Exception(message);

/// <summary>Bad input: a file, key, shape or option that does not fit. Carries the file it concerns.</summary>
public class ModelInputException(string file, string message, Exception? inner = null)
    : Exception($"{file}: {message}", inner)
{
    /// <summary>The file the problem was found in.</summary>
    public string File { get; } = file;

    /// <summary>The problem, without the file name.</summary>
    public string Problem { get; } = message;
}
