using RMNet.IO;
using RMNet.Models;
using RMNet.Onnx;
using RMNet.Plain;
using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Verification;

/// <summary>Something that maps an input batch to outputs: a TorchSharp module or an ONNX Runtime session.</summary>
public sealed class ModelRunner : IDisposable
{
    readonly Func<Tensor, Tensor> _run;
    readonly IDisposable? _owned;

    /// <summary>Wraps a function; <paramref name="owned"/> is disposed with the runner.</summary>
    public ModelRunner(Func<Tensor, Tensor> run, IDisposable? owned = null) => (_run, _owned) = (run, owned);

    /// <summary>Outputs for <paramref name="input"/>.</summary>
    public Tensor Run(Tensor input)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _run(input);
    }

    bool _disposed;

    /// <summary>
    /// The input shape an ONNX model declares (a dimension at or below 0 is dynamic), or null for a module that takes any:
    /// what a verification must give it (a fixed batch is filled by running batch after batch, a fixed size used as it is).
    /// </summary>
    internal int[]? DeclaredInput { get; init; }

    /// <summary>A runner for a TorchSharp module.</summary>
    public static ModelRunner ForModule(nn.Module<Tensor, Tensor> module) => new(module.forward, module);

    /// <summary>
    /// Opens a converted model: <c>.onnx</c> runs in ONNX Runtime; a plain <c>.safetensors</c> written by rmnet
    /// runs with its own architecture; a <c>.pth</c> plain state dict takes its structure from converting
    /// <paramref name="original"/> (in whichever RM form matches the file's shapes) and its weights from the file.
    /// A cancelled <paramref name="cancellationToken"/> stops an ONNX Runtime run midway; where a stop can be asked for,
    /// the model runs one image at a time (a dense ResNet-152 conv node or TorchSharp pass is not interruptible).
    /// </summary>
    public static ModelRunner OpenConverted(string path, ISourceModel original, CancellationToken cancellationToken = default)
    {
        var format = FileFormats.Detect(path);
        if (format == FileFormat.Onnx)
        {
            var ort = new OnnxRuntimeRunner(path, cancellationToken: cancellationToken);
            Func<Tensor, Tensor> run = x => ort.Run(x, cancellationToken);
            // A batch the model fixes is run that many images at a time.
            return new ModelRunner(ort.InputShape is [> 0 and var batch, ..] ? InBatchesOf(batch, run, path) : Verifier.OneImageAtATime(run, cancellationToken), ort)
            {
                DeclaredInput = ort.InputShape,
            };
        }
        if (PlainModelFile.IsPlain(path))
        {
            // The module holds its own references to the weights: the loaded model's go now, the memory with the runner.
            using var plain = PlainModelFile.Load(path);
            return Stoppable(plain.ToModule(), cancellationToken);
        }
        var sd = CheckpointReader.Read(path);
        string? mismatch = null;
        foreach (var mode in Enum.GetValues<Rm.RmMode>())
        {
            var structure = original.ToPlain(mode);
            var model = PlainArchitecture.FromJson(PlainArchitecture.ToJson(structure), sd, path);
            mismatch = ShapeMismatch(structure, model);
            if (mismatch is null) return Stoppable(model.ToModule(), cancellationToken);
        }
        throw new ModelInputException(path, mismatch!);
    }

    /// <summary><paramref name="run"/> on <paramref name="batch"/> images at a time, the outputs joined (the verifier gives a multiple of it).</summary>
    static Func<Tensor, Tensor> InBatchesOf(int batch, Func<Tensor, Tensor> run, string path) => x =>
    {
        if (x.shape[0] == batch) return run(x);
        if (x.shape[0] % batch != 0)
            throw new ModelInputException(path, $"the model fixes a batch of {batch}; {x.shape[0]} images do not fill whole batches");
        return cat(Enumerable.Range(0, (int)(x.shape[0] / batch)).Select(i => run(x[TensorIndex.Slice(i * batch, (i + 1) * batch)])).ToList(), 0);
    };

    static ModelRunner Stoppable(nn.Module<Tensor, Tensor> module, CancellationToken cancellationToken) =>
        new(Verifier.OneImageAtATime(module.forward, cancellationToken), module);

    static string? ShapeMismatch(PlainModel expected, PlainModel actual)
    {
        var e = PlainArchitecture.Tensors(expected);
        var a = PlainArchitecture.Tensors(actual);
        for (int i = 0; i < e.Count; i++)
            if (!e[i].Tensor.shape.SequenceEqual(a[i].Tensor.shape))
                return $"tensor '{a[i].Name}' has shape [{string.Join(", ", a[i].Tensor.shape)}], the conversion of the original gives [{string.Join(", ", e[i].Tensor.shape)}]";
        return null;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _disposed = true;
        _owned?.Dispose();
    }
}
