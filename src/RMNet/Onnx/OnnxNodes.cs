using Onnx;
using RMNet.Plain;

namespace RMNet.Onnx;

/// <summary>Builders for the few ONNX nodes RMNet writes, shared by every writer.</summary>
public static class OnnxNodes
{
    /// <summary>A Conv node with explicit pads, the geometry of <paramref name="c"/>.</summary>
    public static NodeProto Conv(string name, string input, string weight, string bias, string output, ConvLayer c) => With(
        new NodeProto { Name = name, OpType = "Conv", Input = { input, weight, bias }, Output = { output } },
        Ints("kernel_shape", c.KernelH, c.KernelW), Ints("strides", c.StrideH, c.StrideW), Ints("pads", c.Padding.ToOnnx()),
        Ints("dilations", 1, 1), Int("group", c.Groups));

    /// <summary>A node of <paramref name="opType"/> with one input and one output, and the given attributes.</summary>
    public static NodeProto Unary(string opType, string name, string input, string output, params AttributeProto[] attributes) =>
        With(new NodeProto { Name = name, OpType = opType, Input = { input }, Output = { output } }, attributes);

    /// <summary>A Gemm node computing x W^T + b.</summary>
    public static NodeProto Gemm(string name, string input, string weight, string bias, string output) => With(
        new NodeProto { Name = name, OpType = "Gemm", Input = { input, weight, bias }, Output = { output } }, Int("transB", 1));

    /// <summary>An INTS attribute.</summary>
    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    /// <summary>An INT attribute.</summary>
    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    static NodeProto With(NodeProto node, params AttributeProto[] attributes)
    {
        node.Attribute.AddRange(attributes);
        return node;
    }
}
