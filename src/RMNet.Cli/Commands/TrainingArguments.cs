using System.CommandLine;
using RMNet.Data;
using RMNet.Training;

namespace RMNet.Cli.Commands;

/// <summary>The data and optimiser options <c>train</c> and <c>prune</c> share, defined once.</summary>
internal sealed class TrainingArguments
{
    readonly Option<string> _data = new("--data")
    {
        Description = "fashion-mnist (Debian's dataset-fashion-mnist package), a folder of IDX files, or an image folder (train/ and test/, or one sub-folder per class)",
        DefaultValueFactory = _ => "fashion-mnist",
    };
    readonly Option<int> _batch = new("--batch") { Description = "Images per training step", DefaultValueFactory = _ => 128 };
    readonly Option<double> _lr;
    readonly Option<double> _weightDecay = new("--weight-decay") { Description = "L2 weight decay", DefaultValueFactory = _ => 5e-4 };
    readonly Option<long> _seed = new("--seed") { Description = "Seed of initialisation, shuffling, augmentation and subsets", DefaultValueFactory = _ => 0 };
    readonly Option<int?> _trainLimit = new("--train-limit") { Description = "Train on a seeded subset of this many images" };
    readonly Option<int?> _testLimit = new("--test-limit") { Description = "Measure accuracy on this many test images" };
    readonly Option<int?> _imageSize = new("--image-size") { Description = "Side image folders are resized to (default: the first image's)" };
    readonly Option<bool> _noAugment = new("--no-augment") { Description = "No random shifts and flips" };
    readonly Option<int> _threads = new("--threads") { Description = "CPU threads for TorchSharp", DefaultValueFactory = _ => Environment.ProcessorCount };

    /// <summary>The options, with <paramref name="learningRate"/> as the default peak learning rate.</summary>
    public TrainingArguments(double learningRate) =>
        _lr = new("--lr") { Description = "Peak learning rate (SGD, Nesterov momentum 0.9, cosine schedule)", DefaultValueFactory = _ => learningRate };

    /// <summary>Adds the options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { _data, _batch, _lr, _weightDecay, _seed, _trainLimit, _testLimit, _imageSize, _noAugment, _threads })
            command.Options.Add(option);
    }

    /// <summary>The training settings given, for <paramref name="epochs"/> epochs.</summary>
    public TrainOptions Options(ParseResult p, int epochs)
    {
        var options = new TrainOptions(epochs, p.GetValue(_batch), p.GetValue(_lr), 0.9, p.GetValue(_weightDecay), p.GetValue(_seed),
            !p.GetValue(_noAugment), p.GetValue(_trainLimit), p.GetValue(_testLimit));
        if (epochs < 0 || options.BatchSize < 1 || options.LearningRate <= 0 || options.WeightDecay < 0 || options.TrainLimit < 1 || options.TestLimit < 1)
            throw new ModelInputException("rmnet", "--epochs must be at least 0; --batch, --train-limit and --test-limit at least 1; --lr positive; --weight-decay not negative");
        return options;
    }

    /// <summary>The data set named by --data, cut to the limits, with the thread count applied.</summary>
    public DataSplits OpenData(ParseResult p, TrainOptions options, ProgressDisplay progress)
    {
        int threads = p.GetValue(_threads);
        if (threads < 1) throw new ModelInputException("rmnet", "--threads must be at least 1");
        TorchSharp.torch.set_num_threads(threads);
        string name = p.GetValue(_data)!;
        progress.Stage($"loading data {name}");
        var data = DataSets.Open(name, p.GetValue(_imageSize), options.Seed);
        var train = options.TrainLimit is int t ? data.Train.Sample(t, options.Seed) : data.Train;
        var test = options.TestLimit is int v ? data.Test.Take(v) : data.Test;
        progress.Stage($"{data.Name}: {train.Count} training and {test.Count} test images, {train.Channels}x{train.Height}x{train.Width}, {train.ClassCount} classes");
        return data with { Train = train, Test = test };
    }
}
