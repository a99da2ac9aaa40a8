using System.Runtime.InteropServices;

namespace RMNet;

/// <summary>The C heap that libtorch and ONNX Runtime allocate from.</summary>
internal static class NativeHeap
{
    /// <summary>
    /// Hands the heap's free memory back to the system (glibc's <c>malloc_trim</c>; elsewhere nothing). glibc keeps
    /// freed tensors of up to 32 MiB in its arenas: gigabytes after a dense RM, which a process otherwise unmaps only
    /// in its exit, after its last line, while the shell still waits.
    /// </summary>
    public static void Trim()
    {
        if (!OperatingSystem.IsLinux()) return;
        try { MallocTrim(0); }
        catch (EntryPointNotFoundException) { }   // a C library other than glibc (musl)
        catch (DllNotFoundException) { }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    static extern int MallocTrim(nuint pad);
}
