using Microsoft.ML.OnnxRuntime;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = TorchSharp.torch.Tensor;
using Onnx;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// Shape arithmetic made constant where the graph fixes every shape. PyTorch exports a slice assignment
/// (<c>out[:, :, 0:p, :] = v</c>, DBB's BNAndPad) as a ScatterND whose indices and updates, and the Pad before it
/// whose pads, are computed at run time from <c>Shape</c> of the tensors (Range, Slice, Expand, Concat...), not
/// written as constants. Here those inputs (of ScatterND and Pad only) become initializers, so that later passes
/// can read them (<see cref="BorderWrites"/>).
/// Conditions: every graph input has a fixed shape (batch included: the indices enumerate the batch); the graph has
/// no operator whose output shape depends on values (NonZero, Loop, ...), and every shape-giving input (Reshape's
/// shape, Expand's, Slice's bounds...) is itself shape arithmetic, so every shape in the graph is the one
/// that fixed input gives; the value is computed from initializers and <c>Shape</c> outputs only, through arithmetic operators.
/// The values are those ONNX Runtime computes for a zero input of the fixed shape: for such a value the input's
/// contents do not matter, only its shape, which is fixed.
/// <code>
///   x --Shape--Gather--Range--...--Concat--> idx --ScatterND(data, idx, upd)   becomes   idx (initializer) --ScatterND
/// </code>
/// </summary>
internal static class ShapeConstants
{
    // Operators that compute shapes and indices from shapes; a value made only by these from constants and Shape outputs is fixed.
    static readonly HashSet<string> Arithmetic = new()
    {
        "Shape", "Gather", "Cast", "Range", "Slice", "Reshape", "Add", "Sub", "Mul", "Div", "Expand", "Unsqueeze", "Squeeze",
        "Concat", "Equal", "Where", "ConstantOfShape", "Transpose", "Identity",
    };

    // Operators whose output shape depends on the values they read.
    static readonly HashSet<string> ValueShaped = new() { "NonZero", "Compress", "Unique", "NonMaxSuppression", "Loop", "If", "Scan", "TopK", "Resize", "Upsample", "Tile", "OneHot" };

    // Inputs that give an output shape: they must be shape arithmetic for every shape to be fixed.
    static readonly Dictionary<string, int[]> ShapeInputs = new()
    {
        ["Reshape"] = new[] { 1 }, ["Expand"] = new[] { 1 }, ["ConstantOfShape"] = new[] { 0 }, ["Range"] = new[] { 0, 1, 2 },
        ["Slice"] = new[] { 1, 2, 3, 4 }, ["Pad"] = new[] { 1 }, ["Unsqueeze"] = new[] { 1 }, ["Squeeze"] = new[] { 1 },
    };

    /// <summary>Replaces such inputs of <paramref name="model"/>'s ScatterND and Pad nodes by initializers, in place; returns how many.</summary>
    public static int Run(ModelProto model, string file)
    {
        var g = new OnnxGraph(model.Graph, file);
        var targets = g.Order.Where(n => n.OpType is "ScatterND" or "Pad")
            .SelectMany(n => n.Input.Skip(1).Take(n.OpType == "Pad" ? 1 : 2).Where(i => i.Length > 0 && !g.Initializers.ContainsKey(i)))
            .Distinct().ToList();
        if (targets.Count == 0 || !FixedShapes(g)) return 0;
        var memo = new Dictionary<string, bool>();
        targets = targets.Where(t => ShapeOnly(g, t, memo)).ToList();
        if (targets.Count == 0) return 0;

        var values = Evaluate(model, g, targets, file);
        if (values is null) return 0;
        var fresh = g.FreshNames();
        var renamed = new Dictionary<string, string>();
        foreach (var (name, proto) in values)
        {
            proto.Name = fresh($"{name}_constant");
            model.Graph.Initializer.Add(proto);
            renamed[name] = proto.Name;
        }
        // Only the ScatterND and Pad nodes read the constants; the arithmetic, read by nothing else, is then dead.
        foreach (var node in model.Graph.Node.Where(n => n.OpType is "ScatterND" or "Pad"))
            for (int i = 1; i < node.Input.Count; i++)
                if (renamed.TryGetValue(node.Input[i], out var to)) node.Input[i] = to;
        DeadNodes.Run(model, file);
        return renamed.Count;
    }

    /// <summary>True where every graph input's shape is fixed and every shape in the graph follows from them.</summary>
    static bool FixedShapes(OnnxGraph g)
    {
        foreach (var input in g.Graph.Input.Where(i => !g.Initializers.ContainsKey(i.Name)))
        {
            var dims = input.Type?.TensorType?.Shape?.Dim;
            if (dims is null || dims.Any(d => d.DimValue <= 0)) return false;
        }
        var memo = new Dictionary<string, bool>();
        foreach (var node in g.Order)
        {
            if (ValueShaped.Contains(node.OpType)) return false;
            if (ShapeInputs.TryGetValue(node.OpType, out var which)
                && which.Any(i => i < node.Input.Count && node.Input[i].Length > 0 && !ShapeOnly(g, node.Input[i], memo)))
                return false;
        }
        return true;
    }

    /// <summary>True where <paramref name="value"/> is an initializer, a Shape output, or arithmetic on such values only.</summary>
    static bool ShapeOnly(OnnxGraph g, string value, Dictionary<string, bool> memo)
    {
        if (g.Initializers.ContainsKey(value)) return true;
        if (memo.TryGetValue(value, out var known)) return known;
        memo[value] = false; // no cycles in a valid graph; a guard all the same
        bool result = g.ProducerOf(value) is { } p && Arithmetic.Contains(p.OpType)
            && (p.OpType == "Shape" || p.Input.Where(i => i.Length > 0).All(i => ShapeOnly(g, i, memo)));
        return memo[value] = result;
    }

    /// <summary>
    /// The values of <paramref name="targets"/> for a zero input, computed by ONNX Runtime on a copy of the model
    /// whose outputs are those values; null where the runtime cannot run it (then nothing changes).
    /// </summary>
    static List<(string Name, TensorProto Value)>? Evaluate(ModelProto model, OnnxGraph g, List<string> targets, string file)
    {
        var probe = model.Clone();
        probe.Graph.Output.Clear();
        foreach (var t in targets)
        {
            // The type is declared (ONNX Runtime requires it of graph outputs): int64 for indices and pads, else the data's float.
            var consumer = g.ConsumersOf(t)[0];
            var type = consumer.OpType == "ScatterND" && consumer.Input[2] == t ? TensorProto.Types.DataType.Float : TensorProto.Types.DataType.Int64;
            probe.Graph.Output.Add(new ValueInfoProto { Name = t, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type } } });
        }
        probe.Graph.ValueInfo.Clear();
        var inputs = new List<NamedOnnxValue>();
        foreach (var input in g.Graph.Input.Where(i => !g.Initializers.ContainsKey(i.Name)))
        {
            if (input.Type.TensorType.ElemType != (int)TensorProto.Types.DataType.Float) return null;
            var dims = input.Type.TensorType.Shape.Dim.Select(d => (int)d.DimValue).ToArray();
            inputs.Add(NamedOnnxValue.CreateFromTensor(input.Name, new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>(dims)));
        }
        try
        {
            // Basic optimisations only: the layout rewrites would copy every conv weight for one run.
            using var options = new SessionOptions
            {
                LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC,
            };
            using var session = new InferenceSession(probe.ToByteArray(), options);
            using var results = session.Run(inputs, targets);
            var values = new List<(string, TensorProto)>();
            foreach (var r in results)
            {
                Tensor? t = r.ElementType switch
                {
                    TensorElementType.Int64 => tensor(r.AsTensor<long>().ToArray(), r.AsTensor<long>().Dimensions.ToArray().Select(d => (long)d).ToArray()),
                    TensorElementType.Float => tensor(r.AsTensor<float>().ToArray(), r.AsTensor<float>().Dimensions.ToArray().Select(d => (long)d).ToArray()),
                    _ => null,
                };
                if (t is null) return null;
                values.Add((r.Name, OnnxTensors.FromTensor(r.Name, t)));
            }
            return values;
        }
        catch (OnnxRuntimeException)
        {
            return null;
        }
    }
}
