using System.Text.Json;
using System.Text.Json.Serialization;
using RMNet.Data;
using RMNet.IO;
using static TorchSharp.torch;

namespace RMNet.Training;

/// <summary>What a checkpoint's sidecar records: epochs done, the settings and every epoch's figures.</summary>
/// <param name="EpochsDone">Epochs finished and saved in the weights file.</param>
/// <param name="Options">The run's settings.</param>
/// <param name="History">Every finished epoch, in order.</param>
internal sealed record TrainingState(int EpochsDone, TrainOptions Options, IReadOnlyList<EpochResult> History);

/// <summary>
/// Runs a <see cref="Trainer"/> epoch by epoch and saves after each one: the weights as a PyTorch state dict at
/// the checkpoint path (loadable by <c>torch.load</c> + <c>load_state_dict</c>), the optimiser state beside it
/// (<c>.optim</c>) and a JSON sidecar (<c>.state.json</c>) with the epochs done. A run stopped at any point
/// resumes from the last saved epoch and ends where an uninterrupted run ends.
/// </summary>
internal static class TrainingCheckpoint
{
    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>The sidecar recording epochs done.</summary>
    public static string StatePath(string checkpoint) => checkpoint + ".state.json";

    /// <summary>The optimiser state saved beside the weights.</summary>
    public static string OptimizerPath(string checkpoint) => checkpoint + ".optim";

    /// <summary>The saved state of <paramref name="checkpoint"/>, or null where it has none (not started, or a plain state dict).</summary>
    public static TrainingState? ReadState(string checkpoint)
    {
        string path = StatePath(checkpoint);
        if (!File.Exists(path) || !File.Exists(checkpoint)) return null;
        try
        {
            return JsonSerializer.Deserialize<TrainingState>(File.ReadAllText(path), Json)
                ?? throw new ModelInputException(path, "empty training state");
        }
        catch (JsonException e)
        {
            throw new ModelInputException(path, $"unreadable training state ({e.Message})");
        }
    }

    /// <summary>
    /// Trains <paramref name="model"/> to <paramref name="options"/>.Epochs, saving to <paramref name="checkpoint"/>
    /// after every epoch. Where <paramref name="resume"/> and the checkpoint has a state, the weights and optimiser
    /// are restored and training continues after its last epoch. <paramref name="onEpoch"/> hears each epoch.
    /// A cancelled <paramref name="cancellationToken"/> stops within the epoch under way, before it is saved, so the
    /// files keep the last finished epoch and a resume continues from there.
    /// </summary>
    public static TrainingState Run(nn.Module<Tensor, Tensor> model, Trainer trainer, DataSplits data, TrainOptions options,
        string checkpoint, bool resume, IProgress<ProgressStep>? progress = null, Action<EpochResult>? onEpoch = null,
        CancellationToken cancellationToken = default)
    {
        var state = resume ? ReadState(checkpoint) : null;
        var history = new List<EpochResult>();
        if (state is not null)
        {
            LoadWeights(model, checkpoint);
            if (File.Exists(OptimizerPath(checkpoint))) trainer.LoadState(OptimizerPath(checkpoint));
            history.AddRange(state.History);
        }
        var current = new TrainingState(state?.EpochsDone ?? 0, options, history);
        for (int epoch = current.EpochsDone; epoch < options.Epochs; epoch++)
        {
            var result = trainer.RunEpoch(epoch, data.Train, data.Test, progress, cancellationToken);
            history.Add(result);
            current = new TrainingState(epoch + 1, options, history.ToList());
            Save(model, trainer, checkpoint, current);
            onEpoch?.Invoke(result);
        }
        if (state is null && options.Epochs == 0) Save(model, trainer, checkpoint, current);
        return current;
    }

    /// <summary>Loads a state dict saved by <see cref="Run"/> (or by PyTorch) into <paramref name="model"/>.</summary>
    public static void LoadWeights(nn.Module<Tensor, Tensor> model, string checkpoint)
    {
        using var sd = CheckpointReader.Read(checkpoint);
        var (missing, unexpected) = model.load_state_dict(sd.ToModuleWeights(), strict: false);
        if (missing.Count > 0) throw new ModelInputException(checkpoint, $"missing key '{missing[0]}' for the model being trained");
        if (unexpected.Count > 0 && unexpected.Any(k => !k.EndsWith("num_batches_tracked", StringComparison.Ordinal)))
            throw new ModelInputException(checkpoint, $"unexpected key '{unexpected.First(k => !k.EndsWith("num_batches_tracked", StringComparison.Ordinal))}' for the model being trained");
    }

    static void Save(nn.Module<Tensor, Tensor> model, Trainer trainer, string checkpoint, TrainingState state)
    {
        // Weights first, then the optimiser, then the sidecar: the sidecar names an epoch only once its files exist.
        StateDictFile.Save(checkpoint, model);
        string optimizer = OptimizerPath(checkpoint);
        string temp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(optimizer))!, TemporaryNames.New(Path.GetFileName(optimizer)));
        trainer.SaveState(temp);
        File.Move(temp, optimizer, overwrite: true);
        AtomicFile.Write(StatePath(checkpoint), s => JsonSerializer.Serialize(s, state, Json));
    }
}
