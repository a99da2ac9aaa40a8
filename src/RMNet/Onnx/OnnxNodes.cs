using Onnx;
using TorchSharp;
using static TorchSharp.torch;
using RMNet.Plain;

namespace RMNet.Onnx;

/// <summary>Builders for the few ONNX nodes RMNet writes, shared by every writer.</summary>
internal static class OnnxNodes
{
    /// <summary>A Conv node with explicit pads, the geometry of <paramref name="c"/>.</summary>
    public static NodeProto Conv(string name, string input, string weight, string bias, string output, ConvLayer c) => With(
        new NodeProto { Name = name, OpType = "Conv", Input = { input, weight, bias }, Output = { output } },
        Ints("kernel_shape", c.KernelH, c.KernelW), Ints("strides", c.StrideH, c.StrideW), Ints("pads", c.Padding.ToOnnx()),
        Ints("dilations", 1, 1), Int("group", c.Groups));

    /// <summary>A node of <paramref name="opType"/> with one input and one output, and the given attributes.</summary>
    public static NodeProto Unary(string opType, string name, string input, string output, params AttributeProto[] attributes) =>
        With(new NodeProto { Name = name, OpType = opType, Input = { input }, Output = { output } }, attributes);

    /// <summary>A Gemm node computing x W^T + b (alpha and beta written out, as PyTorch's exporter writes them).</summary>
    public static NodeProto Gemm(string name, string input, string weight, string bias, string output) => With(
        new NodeProto { Name = name, OpType = "Gemm", Input = { input, weight, bias }, Output = { output } },
        Float("alpha", 1), Float("beta", 1), Int("transB", 1));

    /// <summary>
    /// Squeeze-and-excitation on channels [offset, C) of <paramref name="input"/>, the first <paramref name="offset"/>
    /// channels passing unchanged, written without Slice or Concat (which runtimes that infer shapes at load time
    /// mishandle with dynamic H and W): GlobalAveragePool of all channels, fc1 with zero columns for the passing
    /// channels, Relu, fc2 with zero rows and bias -100 for them, Sigmoid, Add of 1 on them, Mul. Sigmoid(-100) is
    /// below 4e-44, so 1 + Sigmoid(-100) rounds to exactly 1 in float32 however a runtime computes it, and the
    /// gated channels get Sigmoid(z) + 0: exact on every channel. <paramref name="init"/> adds an initializer
    /// (float32) and returns its name.
    /// </summary>
    public static void SqueezeExcite(List<NodeProto> nodes, string name, string input, string output, long offset,
        (Tensor W, Tensor B) fc1, (Tensor W, Tensor B) fc2, Func<string, Tensor, string> init)
    {
        string Value(string suffix) => $"{name}_{suffix}";
        long hidden = fc1.W.shape[0], count = fc1.W.shape[1], channels = offset + count;
        using var scope = torch.NewDisposeScope();
        var w1 = torch.zeros(hidden, channels, 1, 1);
        w1[TensorIndex.Colon, TensorIndex.Slice(offset)] = fc1.W.to_type(ScalarType.Float32).reshape(hidden, count, 1, 1);
        var w2 = torch.zeros(channels, hidden, 1, 1);
        w2[TensorIndex.Slice(offset)] = fc2.W.to_type(ScalarType.Float32).reshape(count, hidden, 1, 1);
        var b2 = torch.cat(new[] { torch.full(offset, -100f), fc2.B.to_type(ScalarType.Float32) }, 0);
        string gate = Value("gate");
        nodes.Add(Unary("GlobalAveragePool", Value("squeeze"), input, Value("pooled")));
        nodes.Add(new NodeProto { Name = Value("fc1"), OpType = "Conv", Input = { Value("pooled"), init("fc1_weight", w1), init("fc1_bias", fc1.B.to_type(ScalarType.Float32)) }, Output = { Value("fc1") } });
        nodes.Add(Unary("Relu", Value("relu"), Value("fc1"), Value("fc1_relu")));
        nodes.Add(new NodeProto { Name = Value("fc2"), OpType = "Conv", Input = { Value("fc1_relu"), init("fc2_weight", w2), init("fc2_bias", b2) }, Output = { Value("fc2") } });
        nodes.Add(Unary("Sigmoid", Value("sigmoid"), Value("fc2"), offset == 0 ? gate : Value("sigmoid")));
        if (offset > 0)
        {
            var pass = torch.cat(new[] { torch.ones(offset), torch.zeros(count) }, 0).reshape(channels, 1, 1);
            nodes.Add(new NodeProto { Name = Value("pass"), OpType = "Add", Input = { Value("sigmoid"), init("pass", pass) }, Output = { gate } });
        }
        nodes.Add(new NodeProto { Name = Value("excite"), OpType = "Mul", Input = { input, gate }, Output = { output } });
    }

    /// <summary>A FLOAT attribute.</summary>
    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

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
