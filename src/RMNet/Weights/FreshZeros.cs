using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Weights;

/// <summary>
/// Float32 zero tensors whose memory is never written until used. The dense RM kernels are mostly zeros
/// (ResNet-50's dense plain form is 1.1 GB of them); <c>torch.zeros</c> writes every byte, and on this kind of VM
/// each first-touched 4 KiB page costs a few microseconds of page fault, which dominated the conversion. calloc
/// hands out large blocks as fresh mappings that the kernel already zeroed, so only the pages the transform writes
/// (Dirac entries, original kernels) are ever faulted in.
/// <para>TorchSharp has no public factory over native memory, so this binds its exported <c>THSTensor_new</c>
/// (libtorch's from_blob with a deleter) in the already loaded LibTorchSharp. Where that fails, it falls back to
/// <c>torch.zeros</c>: same values, only slower.</para>
/// </summary>
internal static unsafe class FreshZeros
{
    // THSTensor_new(data, deleter, sizes, ndims, element type, tensor type, device type, device index, requires_grad)
    static readonly delegate* unmanaged<void*, delegate* unmanaged<void*, void>, long*, int, sbyte, sbyte, int, int, byte, IntPtr> NewTensor = Bind();

    /// <summary>True when tensors come from fresh native memory; false on the torch.zeros fallback.</summary>
    public static bool OnFreshMemory => NewTensor != null;

    /// <summary>A float32 CPU tensor of zeros with the given shape, registered on the current dispose scope.</summary>
    public static Tensor Float32(params long[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (NewTensor == null || count == 0) return zeros(shape);
        void* data = NativeMemory.AllocZeroed((nuint)count, sizeof(float));
        IntPtr handle;
        fixed (long* sizes = shape)
            handle = NewTensor(data, &Free, sizes, shape.Length, (sbyte)ScalarType.Float32, (sbyte)ScalarType.Float32, 0, 0, 0);
        if (handle == IntPtr.Zero)
        {
            NativeMemory.Free(data);
            return zeros(shape);
        }
        return Tensor.UnsafeCreateTensor(handle);
    }

    [UnmanagedCallersOnly]
    static void Free(void* data) => NativeMemory.Free(data);

    static delegate* unmanaged<void*, delegate* unmanaged<void*, void>, long*, int, sbyte, sbyte, int, int, byte, IntPtr> Bind()
    {
        try
        {
            // Loading a tensor makes TorchSharp load its native library first; by its soname the loader then
            // returns that same instance instead of a second copy.
            using (var warm = zeros(1)) { }
            var name = OperatingSystem.IsWindows() ? "LibTorchSharp.dll" : OperatingSystem.IsMacOS() ? "libLibTorchSharp.dylib" : "libLibTorchSharp.so";
            if (NativeLibrary.TryLoad(name, out var lib) && NativeLibrary.TryGetExport(lib, "THSTensor_new", out var fn))
                return (delegate* unmanaged<void*, delegate* unmanaged<void*, void>, long*, int, sbyte, sbyte, int, int, byte, IntPtr>)fn;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException) { }
        return null;
    }
}
