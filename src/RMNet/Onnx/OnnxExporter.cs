using System.Reflection;
using Onnx;
using RMNet.Plain;
using Tensor = TorchSharp.torch.Tensor;

namespace RMNet.Onnx;

/// <summary>
/// Writes a <see cref="PlainModel"/> as ONNX (OnnxSharp protobuf classes): input <c>input</c> [N, C, H, W] with
/// dynamic N, H, W, output <c>output</c>; only Conv, Relu, MaxPool, GlobalAveragePool, Flatten and Gemm.
/// </summary>
public static class OnnxExporter
{
    /// <summary>The opset the exporter writes.</summary>
    public const int Opset = 13;

    /// <summary>Name of the graph input.</summary>
    public const string InputName = "input";

    /// <summary>Name of the graph output.</summary>
    public const string OutputName = "output";

    /// <summary>The ONNX model of <paramref name="model"/>; <paramref name="docString"/> records what produced it.</summary>
    public static ModelProto Build(PlainModel model, string docString = "")
    {
        var (proto, initializers) = Skeleton(model, docString);
        proto.Graph.Initializer.AddRange(initializers.Select(i => OnnxTensors.FromTensor(i.Name, i.Tensor)));
        return proto;
    }

    /// <summary>The model without initializers, and the initializers as (name, tensor) in graph order.</summary>
    static (ModelProto Proto, List<(string Name, Tensor Tensor)> Initializers) Skeleton(PlainModel model, string docString)
    {
        var initializers = new List<(string Name, Tensor Tensor)>();
        var graph = new GraphProto { Name = "rmnet_plain" };
        string current = InputName;
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var layer = model.Layers[i];
            string output = i == model.Layers.Count - 1 ? OutputName : $"x{i}";
            var node = new NodeProto { Name = $"{layer.Kind}_{i}", OpType = OpType(layer) };
            node.Input.Add(current);
            node.Output.Add(output);
            switch (layer)
            {
                case ConvLayer c:
                    node.Input.Add(Initializer(initializers, $"layers.{i}.weight", c.Weight));
                    node.Input.Add(Initializer(initializers, $"layers.{i}.bias", c.Bias));
                    node.Attribute.Add(Ints("kernel_shape", c.KernelH, c.KernelW));
                    node.Attribute.Add(Ints("strides", c.StrideH, c.StrideW));
                    node.Attribute.Add(Ints("pads", c.Padding.ToOnnx()));
                    node.Attribute.Add(Ints("dilations", 1, 1));
                    node.Attribute.Add(Int("group", c.Groups));
                    break;
                case MaxPoolLayer p:
                    node.Attribute.Add(Ints("kernel_shape", p.Kernel, p.Kernel));
                    node.Attribute.Add(Ints("strides", p.Stride, p.Stride));
                    node.Attribute.Add(Ints("pads", p.Padding.ToOnnx()));
                    break;
                case FlattenLayer:
                    node.Attribute.Add(Int("axis", 1));
                    break;
                case LinearLayer l:
                    node.Input.Add(Initializer(initializers, $"layers.{i}.weight", l.Weight));
                    node.Input.Add(Initializer(initializers, $"layers.{i}.bias", l.Bias));
                    node.Attribute.Add(Int("transB", 1));
                    break;
            }
            graph.Node.Add(node);
            current = output;
        }
        graph.Input.Add(TensorValue(InputName, Dim("N"), Dim(model.InputChannels), Dim("H"), Dim("W")));
        graph.Output.Add(TensorValue(OutputName, Dim("N"), Dim(model.OutputSize(224, 224))));

        var proto = new ModelProto
        {
            IrVersion = 7,
            ProducerName = "rmnet",
            ProducerVersion = Version,
            Domain = "ai.rmnet",
            DocString = docString,
            Graph = graph,
        };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return (proto, initializers);
    }

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> atomically, one tensor in memory at a time (external data past 1.75 GiB of weights).</summary>
    public static void Save(PlainModel model, string path, string docString = "", long externalDataThreshold = OnnxModelFile.ExternalDataThreshold)
    {
        var (proto, initializers) = Skeleton(model, docString);
        OnnxModelFile.Save(proto, initializers, path, externalDataThreshold);
    }

    /// <summary>This library's informational version.</summary>
    public static string Version { get; } =
        typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    static string OpType(PlainLayer layer) => layer switch
    {
        ConvLayer => "Conv",
        ReluLayer => "Relu",
        MaxPoolLayer => "MaxPool",
        GlobalAvgPoolLayer => "GlobalAveragePool",
        FlattenLayer => "Flatten",
        LinearLayer => "Gemm",
        _ => throw new NotSupportedException($"no ONNX op for layer kind {layer.Kind}"),
    };

    static string Initializer(List<(string Name, Tensor Tensor)> initializers, string name, Tensor t)
    {
        initializers.Add((name, t));
        return name;
    }

    static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    static TensorShapeProto.Types.Dimension Dim(string param) => new() { DimParam = param };

    static TensorShapeProto.Types.Dimension Dim(long value) => new() { DimValue = value };

    static ValueInfoProto TensorValue(string name, params TensorShapeProto.Types.Dimension[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.AddRange(dims);
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
