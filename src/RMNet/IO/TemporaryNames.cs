using System.Diagnostics;
using System.Globalization;

namespace RMNet.IO;

/// <summary>
/// Names of the temporary files and directories rmnet writes before an output is complete:
/// <c>.rmnet-&lt;pid&gt;-&lt;random&gt;[-hint]</c>, so they are recognisably rmnet's and name the process that owns
/// them. A run stopped normally removes its own; one killed outright (SIGKILL, power loss) cannot, so a later run
/// in the same directory removes those whose process is gone (<see cref="RemoveStale"/>).
/// </summary>
internal static class TemporaryNames
{
    /// <summary>The prefix every temporary name starts with.</summary>
    public const string Prefix = ".rmnet-";

    /// <summary>
    /// A fresh name owned by this process; <paramref name="hint"/> (e.g. the output's file name) is appended for a
    /// reader's benefit and never parsed.
    /// </summary>
    public static string New(string? hint = null) =>
        $"{Prefix}{Environment.ProcessId}-{Guid.NewGuid():N}{(string.IsNullOrEmpty(hint) ? "" : "-" + hint)}";

    /// <summary>The id of the process that owns <paramref name="name"/> (a file or directory name), or null where it is not an rmnet temporary name.</summary>
    public static int? Owner(string name)
    {
        if (!name.StartsWith(Prefix, StringComparison.Ordinal)) return null;
        var parts = name[Prefix.Length..].Split('-', 3);
        return parts.Length >= 2 && parts[1].Length == 32 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) ? pid : null;
    }

    /// <summary>
    /// Removes the temporary files and directories in <paramref name="directory"/> whose owning process no longer
    /// runs, and returns their paths. Entries of live processes (this one included) are left alone: a process id
    /// in use again by some other program only delays the clean-up, it never removes a running job's files.
    /// </summary>
    public static IReadOnlyList<string> RemoveStale(string directory)
    {
        var removed = new List<string>();
        if (!Directory.Exists(directory)) return removed;
        string[] entries;
        try { entries = Directory.GetFileSystemEntries(directory, Prefix + "*"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return removed; }
        foreach (var path in entries)
        {
            if (Owner(Path.GetFileName(path)) is not int pid || IsRunning(pid)) continue;
            try
            {
                if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                else File.Delete(path);
                removed.Add(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }  // another run got there first, or not ours to delete
        }
        return removed;
    }

    static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;   // no such process
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
