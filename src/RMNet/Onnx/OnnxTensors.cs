using Google.Protobuf;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace RMNet.Onnx;

/// <summary>Conversions between ONNX <see cref="TensorProto"/> and TorchSharp tensors.</summary>
internal static class OnnxTensors
{
    /// <summary>
    /// The tensor's values as float64 (float, double, float16 and integer types), from raw or typed data, or as
    /// <paramref name="dtype"/> where given (float32 for weights that are only copied: a dense ResNet-50's 1.1 GB would
    /// take 2.2 GB on the way through float64). External data must already be loaded into <c>raw_data</c> (see <see cref="OnnxModelFile"/>).
    /// </summary>
    public static Tensor ToTensor(TensorProto t, string file, ScalarType dtype = ScalarType.Float64)
    {
        var shape = t.Dims.ToArray();
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (shape.Any(d => d < 0)) throw new ModelInputException(file, $"initializer '{t.Name}' has a negative dimension");
        var type = (DataType)t.DataType;
        Tensor flat;
        if (TensorMemory.TensorOf(t.RawData) is { } held)
        {
            // A weight a pass computed: its tensor itself, no copy (a copy only where another type is asked for).
            if (held.numel() != count)
                throw new ModelInputException(file, $"initializer '{t.Name}' holds {held.numel()} values, its shape needs {count}");
            flat = held;
        }
        else if (!t.RawData.IsEmpty)
        {
            var (stored, size) = type switch
            {
                DataType.Float => (ScalarType.Float32, 4),
                DataType.Double => (ScalarType.Float64, 8),
                DataType.Float16 => (ScalarType.Float16, 2),
                DataType.Int64 => (ScalarType.Int64, 8),
                DataType.Int32 => (ScalarType.Int32, 4),
                _ => throw new ModelInputException(file, $"initializer '{t.Name}' has unsupported type {type}"),
            };
            if (t.RawData.Length != count * size)
                throw new ModelInputException(file, $"initializer '{t.Name}' holds {t.RawData.Length} bytes, its shape needs {count * size}");
            flat = empty(count, stored);
            // One copy, straight into the tensor's memory.
            t.RawData.Span.CopyTo(flat.bytes);
        }
        else
        {
            flat = type switch
            {
                DataType.Float => tensor(t.FloatData.ToArray()),
                DataType.Double => tensor(t.DoubleData.ToArray()),
                DataType.Int64 => tensor(t.Int64Data.ToArray()),
                DataType.Int32 => tensor(t.Int32Data.ToArray()),
                _ => throw new ModelInputException(file, $"initializer '{t.Name}' has unsupported type {type}"),
            };
            if (flat.numel() != count)
                throw new ModelInputException(file, $"initializer '{t.Name}' holds {flat.numel()} values, its shape needs {count}");
        }
        if (flat.dtype == dtype) return flat.reshape(shape);
        // The stored copy goes at once: left to the finalizer, weights of a large model pile up in the C heap.
        using (flat) return flat.to_type(dtype).reshape(shape);
    }

    /// <summary>An initializer named <paramref name="name"/> holding <paramref name="t"/>: int64 as int64, float16 as float16, anything else as float32.</summary>
    public static TensorProto FromTensor(string name, Tensor t)
    {
        if (t.dtype == ScalarType.Float16)
        {
            var halves = new TensorProto { Name = name, DataType = (int)DataType.Float16 };
            halves.Dims.AddRange(t.shape);
            halves.RawData = UnsafeByteOperations.UnsafeWrap(t.contiguous().bytes.ToArray());
            return halves;
        }
        if (t.dtype == ScalarType.Int64)
        {
            var ints = new TensorProto { Name = name, DataType = (int)DataType.Int64 };
            ints.Dims.AddRange(t.shape);
            ints.RawData = ByteString.CopyFrom(t.contiguous().bytes);
            return ints;
        }
        var proto = new TensorProto { Name = name, DataType = (int)DataType.Float };
        proto.Dims.AddRange(t.shape);
        // The tensor's own memory, not a managed copy of it (TensorMemory): plain models run to gigabytes. The float32
        // handle made on the way is released here: left to the finalizer (or to an enclosing dispose scope) it would
        // keep the tensor's memory alive after its owner disposed it; the bytes hold a handle of their own.
        var floats = t.dtype == ScalarType.Float32 ? t : t.to_type(ScalarType.Float32);
        proto.RawData = floats.numel() * sizeof(float) <= int.MaxValue
            ? TensorMemory.Wrap(floats)
            : UnsafeByteOperations.UnsafeWrap(floats.contiguous().bytes.ToArray());
        if (!ReferenceEquals(floats, t)) floats.Dispose();
        return proto;
    }
}
