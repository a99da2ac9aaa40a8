using Onnx;
using RMNet.Models;
using RMNet.Plain;
using Tensor = TorchSharp.torch.Tensor;

namespace RMNet.Onnx;

/// <summary>
/// Writes the original, residual network of a checkpoint as ONNX (BN folded into the convs, as any deployment
/// would, Add and Relu after each block): the fair baseline for benchmarks and a reference for the ONNX path.
/// </summary>
internal static class ResNetOnnxExporter
{
    /// <summary>Writes <paramref name="checkpoint"/>'s residual network to <paramref name="path"/>.</summary>
    public static void Save(ResNetCheckpoint checkpoint, string path)
    {
        var sd = checkpoint.Weights;
        var spec = checkpoint.Spec;
        var graph = new GraphProto { Name = "rmnet_residual" };
        var initializers = new List<(string Name, Tensor Tensor)>();
        int counter = 0;
        string Conv(string input, Weights.FusedConv conv, string name)
        {
            var layer = conv.ToLayer();
            string output = $"{name}_out";
            graph.Node.Add(OnnxNodes.Conv(name, input, OnnxExporter.Initializer(initializers, $"{name}.weight", layer.Weight),
                OnnxExporter.Initializer(initializers, $"{name}.bias", layer.Bias), output, layer));
            return output;
        }
        string Relu(string input)
        {
            string output = $"relu{counter++}";
            graph.Node.Add(OnnxNodes.Unary("Relu", output, input, output));
            return output;
        }

        string x = Relu(Conv(OnnxExporter.InputName, TorchvisionWeights.Stem(sd, spec), "conv1"));
        if (spec.StemMaxPool)
        {
            graph.Node.Add(OnnxNodes.Unary("MaxPool", "maxpool", x, "maxpool_out", OnnxNodes.Ints("kernel_shape", 3, 3),
                OnnxNodes.Ints("strides", 2, 2), OnnxNodes.Ints("pads", 1, 1, 1, 1)));
            x = "maxpool_out";
        }
        foreach (var block in spec.Blocks())
        {
            var branch = TorchvisionWeights.Branch(sd, spec, block);
            string y = x;
            for (int i = 0; i < branch.Count; i++)
            {
                y = Conv(y, branch[i], $"{block.Prefix}.conv{i + 1}");
                if (i < branch.Count - 1) y = Relu(y);
            }
            string shortcut = TorchvisionWeights.Projection(sd, block) is { } p ? Conv(x, p, $"{block.Prefix}.downsample") : x;
            string sum = $"{block.Prefix}.add";
            graph.Node.Add(new NodeProto { Name = sum, OpType = "Add", Input = { y, shortcut }, Output = { sum } });
            x = Relu(sum);
        }
        graph.Node.Add(OnnxNodes.Unary("GlobalAveragePool", "avgpool", x, "avgpool_out"));
        graph.Node.Add(OnnxNodes.Unary("Flatten", "flatten", "avgpool_out", "flatten_out", OnnxNodes.Int("axis", 1)));
        var fcWeight = sd.Require("fc.weight").to_type(TorchSharp.torch.ScalarType.Float32);
        var fcBias = sd.Require("fc.bias").to_type(TorchSharp.torch.ScalarType.Float32);
        graph.Node.Add(OnnxNodes.Gemm("fc", "flatten_out", OnnxExporter.Initializer(initializers, "fc.weight", fcWeight),
            OnnxExporter.Initializer(initializers, "fc.bias", fcBias), OnnxExporter.OutputName));
        var model = OnnxExporter.Model(graph, spec.InputChannels, spec.NumClasses, $"rmnet: residual {spec.DisplayName}, BN folded");
        OnnxModelFile.Save(model, initializers, path);
    }
}
