using System.Reflection;
using Onnx;
using RMNet.IO;
using RMNet.Plain;
using Tensor = TorchSharp.torch.Tensor;

namespace RMNet.Onnx;

/// <summary>
/// Writes a <see cref="PlainModel"/> as ONNX (OnnxSharp protobuf classes): input <c>input</c> [N, C, H, W] with
/// dynamic N, H, W, output <c>output</c>; only Conv, Relu, MaxPool, GlobalAveragePool, Reshape (or Flatten) and Gemm,
/// plus PRelu, Clip (a clamp with the same bounds on every channel) or Max/Min (per-channel bounds) and the SE gate's
/// nodes where the network has them.
/// </summary>
internal static class OnnxExporter
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

    /// <summary>
    /// The model without initializers, and the initializers as (name, tensor) in graph order. With float16 weights
    /// the graph still takes and gives float32: a Cast follows the input and precedes the output.
    /// </summary>
    static (ModelProto Proto, List<(string Name, Tensor Tensor)> Initializers) Skeleton(PlainModel model, string docString, OutputDtype dtype = OutputDtype.Float32)
    {
        var initializers = new List<(string Name, Tensor Tensor)>();
        var graph = new GraphProto { Name = "rmnet_plain" };
        bool half = dtype == OutputDtype.Float16;
        string current = InputName;
        if (half)
        {
            graph.Node.Add(OnnxNodes.Unary("Cast", "cast_input", InputName, "input_f16", OnnxNodes.Int("to", (int)TensorProto.Types.DataType.Float16)));
            current = "input_f16";
        }
        string last = half ? "output_f16" : OutputName;
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var layer = model.Layers[i];
            string output = i == model.Layers.Count - 1 ? last : $"x{i}";
            string name = $"{layer.Kind}_{i}";
            if (layer is SeLayer se)
            {
                var seNodes = new List<NodeProto>();
                OnnxNodes.SqueezeExcite(seNodes, name, current, output, se.Offset, (se.Fc1Weight, se.Fc1Bias), (se.Fc2Weight, se.Fc2Bias),
                    (n, t) => Initializer(initializers, $"layers.{i}.{n}", t.detach().MoveToOuterDisposeScope()));
                graph.Node.AddRange(seNodes);
                current = output;
                continue;
            }
            if (layer is ClampLayer same && Uniform(same) is var (lo, hi))
            {
                // The same bounds on every channel (ReLU6 outside the carried channels): one Clip, as exporters write it.
                graph.Node.Add(new NodeProto { Name = name, OpType = "Clip", Output = { output },
                    Input = { current, Initializer(initializers, $"layers.{i}.min", TorchSharp.torch.tensor(lo)), Initializer(initializers, $"layers.{i}.max", TorchSharp.torch.tensor(hi)) } });
                current = output;
                continue;
            }
            if (layer is ClampLayer clamp)
            {
                // Per-channel bounds as Max then Min against [C, 1, 1] constants (infinite bounds are valid floats).
                string lowered = $"x{i}_lower";
                graph.Node.Add(new NodeProto { Name = $"{name}_max", OpType = "Max", Output = { lowered },
                    Input = { current, Initializer(initializers, $"layers.{i}.lower", clamp.Lower.reshape(-1, 1, 1)) } });
                graph.Node.Add(new NodeProto { Name = $"{name}_min", OpType = "Min", Output = { output },
                    Input = { lowered, Initializer(initializers, $"layers.{i}.upper", clamp.Upper.reshape(-1, 1, 1)) } });
                current = output;
                continue;
            }
            graph.Node.Add(layer switch
            {
                ConvLayer c => OnnxNodes.Conv(name, current, Initializer(initializers, $"layers.{i}.weight", c.Weight),
                    Initializer(initializers, $"layers.{i}.bias", c.Bias), output, c),
                ReluLayer => OnnxNodes.Unary("Relu", name, current, output),
                PReluLayer p => new NodeProto
                {
                    Name = name, OpType = "PRelu", Output = { output },
                    // Slopes [C, 1, 1] broadcast over N, H, W (unidirectional broadcasting, opset 7+).
                    Input = { current, Initializer(initializers, $"layers.{i}.weight", p.Slope.reshape(-1, 1, 1)) },
                },
                MaxPoolLayer p => OnnxNodes.Unary("MaxPool", name, current, output, OnnxNodes.Ints("kernel_shape", p.Kernel, p.Kernel),
                    OnnxNodes.Ints("strides", p.Stride, p.Stride), OnnxNodes.Ints("pads", p.Padding.ToOnnx())),
                GlobalAvgPoolLayer => OnnxNodes.Unary("GlobalAveragePool", name, current, output),
                // Before a linear layer the width is known: a Reshape to [-1, K] says so, where a Flatten of dynamic H and W
                // leaves readers that infer shapes at load time (OpenCV's DNN module) with a width of 0.
                FlattenLayer when i + 1 < model.Layers.Count && model.Layers[i + 1] is LinearLayer next => new NodeProto
                {
                    Name = name, OpType = "Reshape", Output = { output },
                    Input = { current, Initializer(initializers, $"layers.{i}.shape", TorchSharp.torch.tensor(new[] { -1L, next.Weight.shape[1] })) },
                },
                FlattenLayer => OnnxNodes.Unary("Flatten", name, current, output, OnnxNodes.Int("axis", 1)),
                LinearLayer l => OnnxNodes.Gemm(name, current, Initializer(initializers, $"layers.{i}.weight", l.Weight),
                    Initializer(initializers, $"layers.{i}.bias", l.Bias), output),
                _ => throw new NotSupportedException($"no ONNX op for layer kind {layer.Kind}"),
            });
            current = output;
        }
        if (half)
        {
            graph.Node.Add(OnnxNodes.Unary("Cast", "cast_output", last, OutputName, OnnxNodes.Int("to", (int)TensorProto.Types.DataType.Float)));
            // Weights rounded once, here; integer constants (SE's slice bounds) stay as they are.
            initializers = initializers.Select(i => (i.Name, i.Tensor.is_floating_point() ? i.Tensor.to_type(TorchSharp.torch.ScalarType.Float16) : i.Tensor)).ToList();
        }
        return (Model(graph, model.InputChannels, model.OutputSize(224, 224), docString, model.FixedInputSize), initializers);
    }

    /// <summary>
    /// Wraps <paramref name="graph"/> into a model: input <c>input</c> [N, C, H, W] (N, H, W dynamic), output
    /// <c>output</c> [N, classes], opset <see cref="Opset"/>, producer rmnet.
    /// </summary>
    internal static ModelProto Model(GraphProto graph, long inputChannels, long outputs, string docString, int? fixedSize = null)
    {
        graph.Input.Add(fixedSize is int size
            ? TensorValue(InputName, Dim("N"), Dim(inputChannels), Dim(size), Dim(size))
            : TensorValue(InputName, Dim("N"), Dim(inputChannels), Dim("H"), Dim("W")));
        graph.Output.Add(TensorValue(OutputName, Dim("N"), Dim(outputs)));
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
        return proto;
    }

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> atomically, one tensor in memory at a time (external data past 1.75 GiB of weights).</summary>
    public static void Save(PlainModel model, string path, string docString = "", long externalDataThreshold = OnnxModelFile.ExternalDataThreshold,
        OutputDtype dtype = OutputDtype.Float32, CancellationToken cancellationToken = default)
    {
        var (proto, initializers) = Skeleton(model, docString, dtype);
        OnnxModelFile.Save(proto, initializers, path, externalDataThreshold, cancellationToken);
    }

    /// <summary>This library's informational version.</summary>
    public static string Version { get; } =
        typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    internal static string Initializer(List<(string Name, Tensor Tensor)> initializers, string name, Tensor t)
    {
        initializers.Add((name, t));
        return name;
    }

    /// <summary>The bounds where every channel has the same ones, else null.</summary>
    static (float Lo, float Hi)? Uniform(ClampLayer clamp)
    {
        var lo = clamp.Lower.to_type(TorchSharp.torch.ScalarType.Float32).data<float>().ToArray();
        var hi = clamp.Upper.to_type(TorchSharp.torch.ScalarType.Float32).data<float>().ToArray();
        return lo.Length > 0 && lo.All(v => v.Equals(lo[0])) && hi.All(v => v.Equals(hi[0])) ? (lo[0], hi[0]) : null;
    }

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
