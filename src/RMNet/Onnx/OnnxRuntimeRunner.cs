using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = TorchSharp.torch.Tensor;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>Runs an ONNX model with ONNX Runtime (CPU) on TorchSharp tensors: float32 in, float32 out.</summary>
public sealed class OnnxRuntimeRunner : IDisposable
{
    readonly InferenceSession _session;
    readonly string _inputName;

    /// <summary>Loads <paramref name="path"/>; bad files raise <see cref="ModelInputException"/>. <paramref name="threads"/> 0 lets ONNX Runtime choose.</summary>
    public OnnxRuntimeRunner(string path, int threads = 0)
    {
        try
        {
            using var options = new SessionOptions
            {
                IntraOpNumThreads = threads,
                InterOpNumThreads = 1,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            };
            _session = new InferenceSession(path, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelInputException(path, $"ONNX Runtime cannot load the model: {FirstLine(e.Message)}", e);
        }
        _inputName = _session.InputMetadata.Keys.First();
        InputShape = _session.InputMetadata[_inputName].Dimensions;
    }

    /// <summary>
    /// An action that runs the model on <paramref name="input"/>, converted once into a preallocated ONNX
    /// Runtime value (for benchmarks: nothing but the inference itself is timed).
    /// </summary>
    public Action Prepare(Tensor input)
    {
        var x = input.to_type(ScalarType.Float32).contiguous();
        var value = OrtValue.CreateTensorValueFromMemory(x.data<float>().ToArray(), x.shape);
        var inputs = new Dictionary<string, OrtValue> { [_inputName] = value };
        var runOptions = new RunOptions();
        var outputNames = _session.OutputNames;
        return () =>
        {
            using var outputs = _session.Run(runOptions, inputs, outputNames);
        };
    }

    /// <summary>Declared input shape; -1 marks a dynamic dimension.</summary>
    public int[] InputShape { get; }

    /// <summary>The first output for <paramref name="input"/> [N, C, H, W].</summary>
    public Tensor Run(Tensor input)
    {
        var x = input.to_type(ScalarType.Float32).contiguous();
        var data = x.data<float>().ToArray();
        var dims = x.shape.Select(d => (int)d).ToArray();
        using var results = _session.Run(new[] { NamedOnnxValue.CreateFromTensor(_inputName, new DenseTensor<float>(data, dims)) });
        var output = results.First().AsTensor<float>();
        return tensor(output.ToArray(), output.Dimensions.ToArray().Select(d => (long)d).ToArray());
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();

    static string FirstLine(string s) => s.Split('\n')[0].Trim();
}
