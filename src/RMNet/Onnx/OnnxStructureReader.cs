using Google.Protobuf;
using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// Reads an ONNX file's structure without holding its weights: the file is walked field by field at the protobuf
/// wire level, each initializer is parsed on its own and its values dropped where they exceed
/// <see cref="KeptTensorBytes"/> (names, types and dims stay), and everything else is parsed as usual. Memory
/// then follows the largest single tensor, not the model: <c>inspect</c> of a 1 GiB plain ResNet-50 needs no
/// gigabyte. Small tensors keep their values, since shape propagation reads Pad and Reshape constants.
/// </summary>
internal static class OnnxStructureReader
{
    /// <summary>Initializers up to this many bytes keep their values.</summary>
    public const int KeptTensorBytes = 4096;

    const int GraphField = 7;        // ModelProto.graph
    const int InitializerField = 5;  // GraphProto.initializer

    /// <summary>The model in <paramref name="stream"/> with its large initializers' values left out.</summary>
    public static ModelProto Read(Stream stream)
    {
        var reader = new WireReader(stream);
        var rest = new MemoryStream();
        GraphProto? graph = null;
        while (reader.TryReadTag(out uint tag))
        {
            if (WireFormat.GetTagFieldNumber(tag) == GraphField && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
                graph = ReadGraph(reader, reader.ReadLength());
            else reader.CopyField(tag, rest);
        }
        var model = ModelProto.Parser.ParseFrom(rest.ToArray());
        model.Graph = graph;
        return model;
    }

    static GraphProto ReadGraph(WireReader reader, long length)
    {
        long end = reader.Position + length;
        var rest = new MemoryStream();
        var initializers = new List<TensorProto>();
        while (reader.Position < end)
        {
            if (!reader.TryReadTag(out uint tag)) throw new EndOfStreamException("the file ends inside the graph");
            if (WireFormat.GetTagFieldNumber(tag) == InitializerField && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
                initializers.Add(ReadTensor(reader, reader.ReadLength()));
            else reader.CopyField(tag, rest);
        }
        if (reader.Position != end) throw new InvalidDataException("a graph field overruns its length");
        var graph = GraphProto.Parser.ParseFrom(rest.ToArray());
        graph.Initializer.AddRange(initializers);
        return graph;
    }

    // TensorProto's value fields: float_data, int32_data, int64_data, raw_data, double_data, uint64_data.
    static readonly HashSet<int> ValueFields = new() { 4, 5, 7, 9, 10, 11 };

    /// <summary>An initializer: whole where small, else with its value fields skipped on disk, never read.</summary>
    static TensorProto ReadTensor(WireReader reader, long length)
    {
        if (length <= KeptTensorBytes) return TensorProto.Parser.ParseFrom(reader.ReadBytes(length));
        long end = reader.Position + length;
        var kept = new MemoryStream();
        while (reader.Position < end)
        {
            if (!reader.TryReadTag(out uint tag)) throw new EndOfStreamException("the file ends inside an initializer");
            if (ValueFields.Contains(WireFormat.GetTagFieldNumber(tag)) && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
                reader.Skip(reader.ReadLength());
            else reader.CopyField(tag, kept);
        }
        if (reader.Position != end) throw new InvalidDataException("an initializer overruns its length");
        return TensorProto.Parser.ParseFrom(kept.ToArray());
    }

    /// <summary>Varints, lengths and raw fields read from a stream, with the position kept.</summary>
    sealed class WireReader(Stream stream)
    {
        readonly Stream input = new BufferedStream(stream, 1 << 16);
        readonly long length = stream.Length;

        public long Position { get; private set; }

        public bool TryReadTag(out uint tag)
        {
            int first = input.ReadByte();
            if (first < 0) { tag = 0; return false; }
            Position++;
            tag = (uint)ReadVarint(first);
            if (tag == 0) throw new InvalidDataException("a field has tag 0");
            return true;
        }

        public long ReadLength()
        {
            ulong length = ReadVarint(NextByte());
            if (length > int.MaxValue) throw new InvalidDataException($"a field declares {length} bytes");
            return (long)length;
        }

        public byte[] ReadBytes(long count)
        {
            // A corrupt length must not allocate more than the file holds.
            if (count > length - Position) throw new EndOfStreamException($"a field declares {count} bytes where {length - Position} remain");
            var bytes = new byte[count];
            input.ReadExactly(bytes);
            Position += count;
            return bytes;
        }

        public void Skip(long count)
        {
            if (count > length - Position) throw new EndOfStreamException($"a field declares {count} bytes where {length - Position} remain");
            input.Seek(count, SeekOrigin.Current);
            Position += count;
        }

        /// <summary>Copies one field (its tag already read) to <paramref name="output"/> as it was.</summary>
        public void CopyField(uint tag, Stream output)
        {
            var coded = new CodedOutputStream(output, leaveOpen: true);
            coded.WriteTag(tag);
            switch (WireFormat.GetTagWireType(tag))
            {
                case WireFormat.WireType.Varint: coded.WriteUInt64(ReadVarint(NextByte())); break;
                case WireFormat.WireType.Fixed64: coded.WriteFixed64(BitConverter.ToUInt64(ReadBytes(8))); break;
                case WireFormat.WireType.Fixed32: coded.WriteFixed32(BitConverter.ToUInt32(ReadBytes(4))); break;
                case WireFormat.WireType.LengthDelimited: coded.WriteBytes(ByteString.CopyFrom(ReadBytes(ReadLength()))); break;
                default: throw new InvalidDataException($"unsupported wire type in tag {tag}");
            }
            coded.Flush();
        }

        int NextByte()
        {
            int b = input.ReadByte();
            if (b < 0) throw new EndOfStreamException("the file ends inside a field");
            Position++;
            return b;
        }

        ulong ReadVarint(int first)
        {
            ulong value = (ulong)(first & 0x7f);
            for (int shift = 7, b = first; (b & 0x80) != 0; shift += 7)
            {
                if (shift > 63) throw new InvalidDataException("a varint is too long");
                b = NextByte();
                value |= (ulong)(b & 0x7f) << shift;
            }
            return value;
        }
    }
}
