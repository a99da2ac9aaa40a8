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

    /// <summary>
    /// Squeeze-and-excitation on channels [offset, offset + count) of <paramref name="input"/>: Slice, GlobalAveragePool,
    /// Conv (fc1), Relu, Conv (fc2), Sigmoid, Mul, and Concat with the untouched channels before offset.
    /// <paramref name="ints"/> adds an int64 initializer and returns its name.
    /// </summary>
    public static void SqueezeExcite(List<NodeProto> nodes, string name, string input, string output, long offset, long count,
        (string W, string B) fc1, (string W, string B) fc2, Func<string, long[], string> ints)
    {
        string Value(string suffix) => $"{name}_{suffix}";
        var axes = ints("axes", new long[] { 1 });
        nodes.Add(new NodeProto { Name = Value("branch"), OpType = "Slice", Output = { Value("branch") },
            Input = { input, ints("branch_start", new[] { offset }), ints("branch_end", new[] { offset + count }), axes } });
        nodes.Add(Unary("GlobalAveragePool", Value("squeeze"), Value("branch"), Value("pooled")));
        nodes.Add(new NodeProto { Name = Value("fc1"), OpType = "Conv", Input = { Value("pooled"), fc1.W, fc1.B }, Output = { Value("fc1") } });
        nodes.Add(Unary("Relu", Value("relu"), Value("fc1"), Value("fc1_relu")));
        nodes.Add(new NodeProto { Name = Value("fc2"), OpType = "Conv", Input = { Value("fc1_relu"), fc2.W, fc2.B }, Output = { Value("fc2") } });
        nodes.Add(Unary("Sigmoid", Value("sigmoid"), Value("fc2"), Value("gate")));
        nodes.Add(new NodeProto { Name = Value("excite"), OpType = "Mul", Input = { Value("branch"), Value("gate") }, Output = { offset == 0 ? output : Value("gated") } });
        if (offset == 0) return;
        nodes.Add(new NodeProto { Name = Value("pass"), OpType = "Slice", Output = { Value("pass") },
            Input = { input, ints("pass_start", new long[] { 0 }), ints("pass_end", new[] { offset }), axes } });
        nodes.Add(With(new NodeProto { Name = Value("concat"), OpType = "Concat", Input = { Value("pass"), Value("gated") }, Output = { output } }, Int("axis", 1)));
    }

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
