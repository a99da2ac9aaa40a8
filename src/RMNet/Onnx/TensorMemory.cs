using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Google.Protobuf;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// A tensor's own (native, contiguous) memory as the bytes of an ONNX initializer, so that a weight the passes
/// compute goes into the graph without a managed copy, and is read back as the same tensor without another one:
/// a dense ResNet-50 is 1.1 GB of weights, which the graph engine otherwise copied into managed arrays as it wrote
/// them and back into tensors as it read the plain graph (docs/benchmarks.md). The bytes are immutable once wrapped,
/// as a <see cref="ByteString"/>'s must be: the tensor is a handle of its own, outside every dispose scope, freed by
/// its finalizer once the last initializer holding it is collected.
/// </summary>
internal sealed class TensorMemory : MemoryManager<byte>
{
    readonly Tensor _tensor;

    TensorMemory(Tensor tensor) => _tensor = tensor;

    /// <summary>
    /// Bytes holding <paramref name="values"/>' values (contiguous, of its dtype), sharing its storage through a handle of
    /// their own: the caller may dispose <paramref name="values"/>, but must not change it afterwards.
    /// </summary>
    public static ByteString Wrap(Tensor values)
    {
        var own = values.is_contiguous() ? values.reshape(-1) : values.contiguous().reshape(-1);
        own.DetachFromDisposeScope();
        return UnsafeByteOperations.UnsafeWrap(new TensorMemory(own).Memory);
    }

    /// <summary>The tensor behind <paramref name="bytes"/>, as a new handle (the caller's to dispose), where <see cref="Wrap"/> made them.</summary>
    public static Tensor? TensorOf(ByteString bytes) =>
        MemoryMarshal.TryGetMemoryManager<byte, TensorMemory>(bytes.Memory, out var manager) ? manager._tensor.alias() : null;

    /// <summary>
    /// Lets go of <paramref name="model"/>'s tensors now rather than at the next garbage collection, where what was read from
    /// it (a plain model's layers, which share the memory) is to free it on its own; the initializers are removed with them.
    /// </summary>
    public static void Release(global::Onnx.ModelProto model)
    {
        foreach (var t in model.Graph.Initializer)
            if (MemoryMarshal.TryGetMemoryManager<byte, TensorMemory>(t.RawData.Memory, out var manager)) manager._tensor.Dispose();
        model.Graph.Initializer.Clear();
    }

    /// <inheritdoc />
    public override Span<byte> GetSpan() => _tensor.bytes;

    /// <inheritdoc />
    public override unsafe MemoryHandle Pin(int elementIndex = 0) =>
        new((byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(_tensor.bytes)) + elementIndex);

    /// <inheritdoc />
    public override void Unpin() { }

    /// <summary>The tensor is freed by its own finalizer after the last reference (a <see cref="ByteString"/> is never disposed).</summary>
    protected override void Dispose(bool disposing) { }
}
