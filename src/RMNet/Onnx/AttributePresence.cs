using System.Reflection;
using Google.Protobuf;
using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// Keeps zero-valued scalar attributes in the files rmnet writes. onnx.proto is proto2: an attribute of type INT,
/// FLOAT or STRING carries its value with explicit presence, and readers built on proto2 (OpenCV's DNN module,
/// TensorRT's and ncnn's parsers) refuse an INT attribute without its <c>i</c> field. The ONNX classes used here
/// are generated as proto3, which drops a field equal to zero on write (<c>ceil_mode=0</c>, <c>storage_order=0</c>,
/// <c>axis=0</c>, <c>count_include_pad=0</c>, <c>beta=0.0</c>, an empty string). Before a model is written, each such
/// attribute gets its value field back as an unknown field of the message, which the serializer writes as is and
/// every reader parses as the field itself.
/// </summary>
internal static class AttributePresence
{
    const int FloatField = 2, IntField = 3, StringField = 4;

    // Generated messages keep unknown fields in this private field and write them after the known ones.
    static readonly FieldInfo UnknownFields = typeof(AttributeProto).GetField("_unknownFields", BindingFlags.NonPublic | BindingFlags.Instance)
        ?? throw new InvalidOperationException("AttributeProto has no _unknownFields: the protobuf runtime changed");

    /// <summary>Gives every zero-valued INT, FLOAT and STRING attribute of <paramref name="model"/> its value field.</summary>
    public static void Mark(ModelProto model)
    {
        if (model.Graph is not null) Mark(model.Graph);
        foreach (var f in model.Functions) Mark(f.Node);
    }

    static void Mark(GraphProto graph) => Mark(graph.Node);

    static void Mark(IEnumerable<NodeProto> nodes)
    {
        foreach (var a in nodes.SelectMany(n => n.Attribute))
        {
            var field = a.Type switch
            {
                AttributeProto.Types.AttributeType.Int when a.I == 0 => Encode(IntField, WireFormat.WireType.Varint, o => o.WriteInt64(0)),
                // -0.0 is dropped too (it compares equal to zero): write the value's own bits.
                AttributeProto.Types.AttributeType.Float when a.F == 0 => Encode(FloatField, WireFormat.WireType.Fixed32, o => o.WriteFloat(a.F)),
                AttributeProto.Types.AttributeType.String when a.S.IsEmpty => Encode(StringField, WireFormat.WireType.LengthDelimited, o => o.WriteBytes(ByteString.Empty)),
                _ => null,
            };
            if (field is not null) UnknownFields.SetValue(a, field);
            // A value made non-zero after an earlier write must not be followed by the stale zero.
            // (Only this class puts unknown fields on attributes: a parsed value field is always a known one.)
            else if (UnknownFields.GetValue(a) is not null)
                UnknownFields.SetValue(a, null);
            if (a.G is not null) Mark(a.G);
            foreach (var g in a.Graphs) Mark(g);
        }
    }

    /// <summary>An unknown-field set holding one field, built by parsing its wire bytes.</summary>
    static UnknownFieldSet Encode(int field, WireFormat.WireType type, Action<CodedOutputStream> writeValue)
    {
        using var bytes = new MemoryStream();
        var output = new CodedOutputStream(bytes);
        output.WriteTag(field, type);
        writeValue(output);
        output.Flush();
        var input = new CodedInputStream(bytes.ToArray());
        input.ReadTag();
        return UnknownFieldSet.MergeFieldFrom(null, input);
    }
}
