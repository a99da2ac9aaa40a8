using Onnx;

namespace RMNet.Onnx;

/// <summary>
/// A node's attributes read by name, with ONNX's defaults where the attribute is absent (an empty list, the given
/// number, <c>NOTSET</c> for <c>auto_pad</c>): the one reader every pass uses.
/// </summary>
internal static class NodeAttributes
{
    /// <summary>The INTS attribute <paramref name="name"/>, or an empty array where absent.</summary>
    public static long[] Ints(this NodeProto node, string name) =>
        node.Attribute.FirstOrDefault(a => a.Name == name)?.Ints.ToArray() ?? Array.Empty<long>();

    /// <summary>The INT attribute <paramref name="name"/>, or <paramref name="absent"/>.</summary>
    public static long Int(this NodeProto node, string name, long absent) => node.Attribute.FirstOrDefault(a => a.Name == name)?.I ?? absent;

    /// <summary>The FLOAT attribute <paramref name="name"/>, or <paramref name="absent"/>.</summary>
    public static float Float(this NodeProto node, string name, float absent) => node.Attribute.FirstOrDefault(a => a.Name == name)?.F ?? absent;

    /// <summary>The node's <c>auto_pad</c>, <c>NOTSET</c> where absent.</summary>
    public static string AutoPad(this NodeProto node) => node.Attribute.FirstOrDefault(a => a.Name == "auto_pad")?.S.ToStringUtf8() ?? "NOTSET";
}
