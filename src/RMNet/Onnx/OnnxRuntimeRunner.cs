using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = TorchSharp.torch.Tensor;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>Runs an ONNX model with ONNX Runtime (CPU) on TorchSharp tensors: float32 in, float32 out.</summary>
internal sealed class OnnxRuntimeRunner : IDisposable
{
    readonly InferenceSession _session;
    readonly string _inputName;
    readonly string _path;

    /// <summary>
    /// Loads <paramref name="path"/>; bad files raise <see cref="ModelInputException"/>. <paramref name="threads"/> 0 lets
    /// ONNX Runtime choose. A cancelled <paramref name="cancellationToken"/> stops the wait for the load (seconds for a
    /// large model) with an <see cref="OperationCanceledException"/>. <paramref name="forLatency"/> turns on all of ONNX
    /// Runtime's graph optimisations, as a deployment would (benchmarks); otherwise only the basic ones run, which is what
    /// checking a model's outputs needs: the layout rewrites copy every conv weight, doubling a dense ResNet-152's load
    /// (15 s instead of 30 s for `convert --verify`).
    /// </summary>
    public OnnxRuntimeRunner(string path, int threads = 0, CancellationToken cancellationToken = default, bool forLatency = false)
    {
        _path = path;
        try
        {
            _session = Open(path, threads, forLatency, cancellationToken);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelInputException(path, $"ONNX Runtime cannot load the model: {FirstLine(e.Message)}", e);
        }
        _inputName = _session.InputMetadata.Keys.First();
        InputShape = _session.InputMetadata[_inputName].Dimensions;
    }

    static InferenceSession Open(string path, int threads, bool forLatency, CancellationToken cancellationToken)
    {
        InferenceSession Create()
        {
            using var options = new SessionOptions
            {
                IntraOpNumThreads = threads,
                InterOpNumThreads = 1,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                GraphOptimizationLevel = forLatency ? GraphOptimizationLevel.ORT_ENABLE_ALL : GraphOptimizationLevel.ORT_ENABLE_BASIC,
                // Its errors reach the caller as exceptions (one line each); its own log would print them twice, and a
                // load abandoned on a stop would add an error about the deleted file after rmnet's last line.
                LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
            };
            return new InferenceSession(path, options);
        }
        if (!cancellationToken.CanBeCanceled) return Create();
        // ONNX Runtime cannot stop a load midway: on cancellation the load is left to finish on its own thread (it reads
        // only the file, which may be deleted meanwhile) and its session is closed then.
        var opening = Task.Run(Create, CancellationToken.None);
        try
        {
            opening.Wait(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            opening.ContinueWith(t => t.Result.Dispose(), TaskContinuationOptions.OnlyOnRanToCompletion);
            throw;
        }
        catch (AggregateException) { }  // the load's own exception is rethrown unwrapped below
        return opening.GetAwaiter().GetResult();
    }

    /// <summary>
    /// An action that runs the model on <paramref name="input"/>, converted once into a preallocated ONNX
    /// Runtime value (for benchmarks: nothing but the inference itself is timed). A cancelled
    /// <paramref name="cancellationToken"/> stops the run in progress.
    /// </summary>
    public Action Prepare(Tensor input, CancellationToken cancellationToken = default)
    {
        var x = input.to_type(ScalarType.Float32).contiguous();
        var value = OrtValue.CreateTensorValueFromMemory(x.data<float>().ToArray(), x.shape);
        var inputs = new Dictionary<string, OrtValue> { [_inputName] = value };
        var runOptions = new RunOptions();
        cancellationToken.Register(() => runOptions.Terminate = true);
        var outputNames = _session.OutputNames;
        return () =>
        {
            try
            {
                Stoppable(cancellationToken, () =>
                {
                    using var outputs = _session.Run(runOptions, inputs, outputNames);
                });
            }
            catch (OnnxRuntimeException e)
            {
                throw CannotRun(e, x.shape);
            }
        };
    }

    /// <summary>Declared input shape; -1 marks a dynamic dimension.</summary>
    public int[] InputShape { get; }

    /// <summary>The first output for <paramref name="input"/> [N, C, H, W]; a cancelled <paramref name="cancellationToken"/> stops the run midway.</summary>
    public Tensor Run(Tensor input, CancellationToken cancellationToken = default)
    {
        var x = input.to_type(ScalarType.Float32).contiguous();
        var data = x.data<float>().ToArray();
        var dims = x.shape.Select(d => (int)d).ToArray();
        using var runOptions = new RunOptions();
        using var stop = cancellationToken.Register(() => runOptions.Terminate = true);
        try
        {
            return Stoppable(cancellationToken, () =>
            {
                using var results = _session.Run(new[] { NamedOnnxValue.CreateFromTensor(_inputName, new DenseTensor<float>(data, dims)) }, _session.OutputNames, runOptions);
                var output = results.First().AsTensor<float>();
                return tensor(output.ToArray(), output.Dimensions.ToArray().Select(d => (long)d).ToArray());
            });
        }
        catch (OnnxRuntimeException e)
        {
            throw CannotRun(e, x.shape);
        }
    }

    /// <summary>
    /// A model that loads may still fail on an input its declared shape accepts: PyTorch's export of DBB with dynamic axes
    /// writes its traced size into an Expand, so it runs at that size only. Said in one line, naming the file.
    /// </summary>
    ModelInputException CannotRun(OnnxRuntimeException e, long[] shape) =>
        new(_path, $"ONNX Runtime cannot run the model on an input of [{string.Join(", ", shape)}]: {FirstLine(e.Message)}"
            + " (a model whose export fixed its batch or size inside the graph runs only at those: give the batch and size it was exported at, "
            + "--samples and --input-size for verify, --batch and --size for bench)", e);

    /// <summary>Runs <paramref name="run"/>; where the token stopped ONNX Runtime (RunOptions.Terminate), says so as a cancellation.</summary>
    static T Stoppable<T>(CancellationToken cancellationToken, Func<T> run)
    {
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            return run();
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
    }

    static void Stoppable(CancellationToken cancellationToken, Action run) => Stoppable(cancellationToken, () => { run(); return 0; });

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();

    static string FirstLine(string s) => s.Split('\n')[0].Trim();
}
