using System.CommandLine;
using RMNet.Blocks;
using RMNet.IO;
using RMNet.Models;
using RMNet.Training;

namespace RMNet.Cli.Commands;

/// <summary><c>rmnet train</c>: trains a ResNet on a data set and saves a PyTorch-compatible checkpoint after every epoch.</summary>
internal static class TrainCommand
{
    public sealed record Result(string Output, string Architecture, string Data, int TrainImages, int TestImages, long Parameters,
        double TestAccuracy, IReadOnlyList<EpochResult> Epochs, bool Resumed);

    public static Command Create(CommandIO io)
    {
        var arch = new Option<string>("--arch")
        {
            Description = "Layout: resnet20/32/44/56/110 (CIFAR-style) or a torchvision name (resnet18, resnet50, ...)",
            DefaultValueFactory = _ => "resnet20",
        };
        var output = CommonOptions.Output("Checkpoint to write (.pth); saved after every epoch");
        var epochs = new Option<int>("--epochs") { Description = "Epochs to train (in all, counting those before a resume)", DefaultValueFactory = _ => 10 };
        var resume = new Option<bool>("--resume") { Description = "Continue the run saved at --output from its last finished epoch" };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing checkpoint (starts afresh)" };
        var json = CommonOptions.Json();
        var training = new TrainingArguments(learningRate: 0.1);
        var cmd = new Command("train", "Train a ResNet (CIFAR-style or torchvision layout) on Fashion-MNIST or an image folder") { arch, output, epochs, resume, force, json };
        training.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var ctx = io.Context(p, json);
            return ctx.Run(() => Run(ctx, p, training, p.GetValue(arch)!, p.GetValue(output)!, p.GetValue(epochs), p.GetValue(resume), p.GetValue(force)));
        });
        return cmd;
    }

    static int Run(CliContext ctx, ParseResult p, TrainingArguments training, string arch, string output, int epochs, bool resume, bool force)
    {
        if (FileFormats.FromExtension(output) != FileFormat.TorchZip)
            throw new ModelInputException(output, "training checkpoints are written as .pth or .pt");
        if (!ResNetSpec.KnownNames.Contains(arch))
            throw new ModelInputException(arch, $"unknown --arch; known: {string.Join(", ", ResNetSpec.KnownNames)}");
        bool resuming = resume && TrainingCheckpoint.ReadState(output) is not null;
        if (resume && !resuming) throw new ModelInputException(output, "nothing to resume: no checkpoint with a training state (.state.json) here");
        if (!resuming) AtomicFile.CheckWritable(output, force);
        ctx.RemoveStaleTemporaries(output);
        var options = training.Options(p, epochs);
        using var data = training.OpenData(p, options, ctx.Progress);
        var spec = ResNetSpec.Named(arch, data.Train.ClassCount, data.Train.Channels);
        TorchSharp.torch.manual_seed(options.Seed);
        using var model = new ResNet(spec);
        using var trainer = new Trainer(model, options);
        ctx.Progress.Stage(resuming ? $"resuming {output}" : $"training {spec.DisplayName} ({ResNetCost.Parameters(spec):N0} parameters) for {epochs} epochs");
        var state = TrainingCheckpoint.Run(model, trainer, data, options, output, resuming, ctx.Progress,
            e => ctx.Progress.Stage($"epoch {e.Epoch}/{e.Epochs}: loss {e.Loss:F4}, train {100 * e.TrainAccuracy:F2}%, test {100 * e.TestAccuracy:F2}%, {e.ImagesPerSecond:F0} img/s, {e.Seconds:F0} s; saved {output}"),
            ctx.Cancellation);
        double accuracy = state.History.Count > 0 ? state.History[^1].TestAccuracy : Evaluation.Accuracy(model.forward, data.Test, cancellationToken: ctx.Cancellation);
        ctx.Document(new Result(output, spec.DisplayName, data.Name, data.Train.Count, data.Test.Count, ResNetCost.Parameters(spec), accuracy, state.History, resuming));
        ctx.Line($"{output}: {spec.DisplayName} trained {state.EpochsDone} epochs on {data.Name} ({data.Train.Count} images); test accuracy {100 * accuracy:F2}% on {data.Test.Count} images");
        return ExitCodes.Success;
    }
}
