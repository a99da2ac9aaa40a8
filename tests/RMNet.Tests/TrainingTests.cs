using RMNet.Blocks;
using RMNet.Data;
using RMNet.IO;
using RMNet.Models;
using RMNet.Training;
using Xunit;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>Training mechanics on 1,000 real Fashion-MNIST images (accuracy measured on 500 real test labels).</summary>
[Collection("Training")]
public class TrainingTests
{
    /// <summary>The fixture's CIFAR layout: narrow enough to train in seconds.</summary>
    static ResNetSpec Tiny => ResNetSpec.Named("resnet20", 10, 1) with
    {
        Name = null, Layers = new[] { 1, 1, 1 }, StemWidth = 8, Planes = new[] { 8, 16, 32 }, Widths = new[] { 8, 16, 32 },
    };

    [Fact]
    public void BatchNormStatisticsAreReestimatedFromTheImagesAlone()
    {
        using var net = nn.Sequential(("conv", nn.Conv2d(1, 4, 3, padding: 1)), ("bn", nn.BatchNorm2d(4)));
        var bn = (TorchSharp.Modules.BatchNorm2d)net.named_modules().Single(m => m.name == "bn").module;
        // Stale statistics and a momentum of its own, as a BatchNorm has after training on other inputs.
        using (no_grad()) { bn.running_mean!.fill_(5); bn.running_var!.fill_(9); }
        bn.momentum = 0.3;
        using var images = rand(new long[] { 256, 1, 8, 8 }, generator: new Generator(3)) * 2 + 1;
        Assert.Equal(1, BatchNormStatistics.Reestimate(net, images, batchSize: 64));
        // Four equal batches averaged alike: the mean over all images of the conv's output, whatever came before.
        using var y = ((TorchSharp.Modules.Conv2d)net.named_modules().Single(m => m.name == "conv").module).forward(images).detach();
        using var mean = y.mean(new long[] { 0, 2, 3 });
        Assert.True(bn.running_mean!.allclose(mean, rtol: 1e-5, atol: 1e-6));
        using var variance = y.var(new long[] { 0, 2, 3 });
        Assert.True(bn.running_var!.allclose(variance, rtol: 0.05), "the average of batch variances is close to the overall variance");
        Assert.Equal(0.3, bn.momentum);
        Assert.False(net.training);
    }

    [Fact]
    public void TrainingLearnsFashionMnistAndSavesPyTorchNames()
    {
        using var data = FashionMnist.Load(Fixture.FashionSubset);
        using var dir = Fixture.Temp();
        manual_seed(0);
        using var model = new ResNet(Tiny);
        var options = new TrainOptions(Epochs: 4, BatchSize: 32, LearningRate: 0.05);
        using var trainer = new Trainer(model, options);
        double before = Evaluation.Accuracy(model.forward, data.Test);
        var state = TrainingCheckpoint.Run(model, trainer, data, options, dir.File("m.pth"), resume: false);
        Assert.Equal(4, state.EpochsDone);
        Assert.True(state.History[^1].Loss < state.History[0].Loss, "loss fell");
        // Ten classes: chance is 10%. Four epochs on 1,000 images reach well above it on unseen images.
        Assert.True(state.History[^1].TestAccuracy > 0.6, $"test accuracy {state.History[^1].TestAccuracy}");
        Assert.True(state.History[^1].TestAccuracy > before + 0.3);
        // The checkpoint has exactly the key set PyTorch saved for this layout (cifar_narrow.pth differs in blocks).
        var saved = CheckpointReader.Read(dir.File("m.pth"));
        var expected = Tiny.ExpectedParameters().Select(p => p.Key).ToHashSet();
        Assert.Equal(expected, saved.Keys.Where(k => !k.EndsWith("num_batches_tracked")).ToHashSet());
        using var reloaded = ResNetCheckpoint.Load(dir.File("m.pth"));
        Assert.Equal(state.History[^1].TestAccuracy, Evaluation.Accuracy(reloaded.CreateModule().forward, data.Test), 6);
    }

    [Fact]
    public void AResumedRunEndsWhereAnUninterruptedOneEnds()
    {
        using var data = FashionMnist.Load(Fixture.FashionSubset);
        var small = data with { Train = data.Train.Take(256), Test = data.Test.Take(64) };
        using var dir = Fixture.Temp();
        var options = new TrainOptions(Epochs: 2, BatchSize: 64, LearningRate: 0.05);
        Tensor Train(string path, bool stopAfterOne)
        {
            manual_seed(1);
            using var model = new ResNet(Tiny);
            using (var trainer = new Trainer(model, options))
                TrainingCheckpoint.Run(model, trainer, small, stopAfterOne ? options with { Epochs = 1 } : options, path, resume: false);
            if (stopAfterOne)
            {
                // A new process: fresh module and optimiser, state from disk only.
                manual_seed(99);
                using var again = new ResNet(Tiny);
                using var trainer2 = new Trainer(again, options);
                var state = TrainingCheckpoint.Run(again, trainer2, small, options, path, resume: true);
                Assert.Equal(2, state.History.Count);
                return Flat(again);
            }
            return Flat(model);
        }
        static Tensor Flat(ResNet m) => cat(m.parameters().Select(p => p.detach().flatten()).ToArray()).clone();
        var straight = Train(dir.File("a.pth"), false);
        var resumed = Train(dir.File("b.pth"), true);
        double diff;
        using (NewDisposeScope()) diff = (straight - resumed).abs().max().item<float>();
        Assert.True(diff < 1e-4, $"weights differ by {diff}");
    }

    [Fact]
    public void TorchvisionLayoutsTrainOnSmallGrayscaleImagesToo()
    {
        // torchvision's 7x7/2 stem and max pool on 28x28 inputs leave 1x1 maps in layer4: any input size trains.
        var spec = ResNetSpec.Create(BlockKind.Basic, new[] { 1, 1, 1, 1 }, 8, 1, 64, 10) with { InputChannels = 1 };
        using var data = FashionMnist.Load(Fixture.FashionSubset);
        var small = data with { Train = data.Train.Take(128), Test = data.Test.Take(64) };
        using var dir = Fixture.Temp();
        manual_seed(0);
        using var model = new ResNet(spec);
        var options = new TrainOptions(Epochs: 1, BatchSize: 32);
        using var trainer = new Trainer(model, options);
        var state = TrainingCheckpoint.Run(model, trainer, small, options, dir.File("tv.pth"), resume: false);
        Assert.True(double.IsFinite(state.History[0].Loss));
        using var reloaded = ResNetCheckpoint.Load(dir.File("tv.pth"));
        Assert.Equal(StemKind.ImageNet, reloaded.Spec.Stem);
        Assert.Equal(1, reloaded.Spec.InputChannels);
        Assert.Equal(4, reloaded.Spec.StageCount);
    }

    [Fact]
    public void AugmentationShiftsAndFlipsWithinThePadding()
    {
        var images = arange(2 * 1 * 4 * 4, dtype: ScalarType.Float32).reshape(2, 1, 4, 4) + 1;
        var output = Augmentation.ShiftAndFlip(images, 2, new Generator(5));
        Assert.Equal(images.shape, output.shape);
        for (int i = 0; i < 2; i++)
        {
            // Every non-zero output pixel is one of the image's own pixels (a shift/flip moves, never invents).
            var own = images[i].flatten().data<float>().ToHashSet();
            Assert.All(output[i].flatten().data<float>().ToArray(), v => Assert.True(v == 0 || own.Contains(v)));
        }
    }

    [Fact]
    public void DistillationLossIsHintonsFormula()
    {
        var student = new[,] { { 1.0, -0.5, 2.0 }, { 0.3, 0.1, -1.2 } };
        var teacher = new[,] { { 0.5, 0.5, 3.0 }, { -1.0, 2.0, 0.0 } };
        long[] labels = { 2, 0 };
        const double w = 0.7, t = 4;
        // By hand: softmax, cross-entropy and KL over the two rows, in doubles.
        static double[] Softmax(double[,] z, int row, double temperature)
        {
            var e = Enumerable.Range(0, 3).Select(j => Math.Exp(z[row, j] / temperature)).ToArray();
            return e.Select(v => v / e.Sum()).ToArray();
        }
        double ce = 0, kl = 0;
        for (int r = 0; r < 2; r++)
        {
            ce -= Math.Log(Softmax(student, r, 1)[labels[r]]) / 2;
            var p = Softmax(teacher, r, t);
            var q = Softmax(student, r, t);
            kl += Enumerable.Range(0, 3).Sum(j => p[j] * Math.Log(p[j] / q[j])) / 2;
        }
        double expected = (1 - w) * ce + w * t * t * kl;
        var distillation = new Distillation(_ => tensor(teacher).to_type(ScalarType.Float32), w, t);
        using var scope = NewDisposeScope();
        var loss = distillation.Loss(tensor(student).to_type(ScalarType.Float32), zeros(2), tensor(labels));
        Assert.Equal(expected, loss.item<float>(), 5);
    }

    [Fact]
    public void AStudentLearnsFromTheTeacherAloneEvenWithWrongLabels()
    {
        using var data = FashionMnist.Load(Fixture.FashionSubset);
        var options = new TrainOptions(Epochs: 4, BatchSize: 32, LearningRate: 0.05);
        manual_seed(2);
        using var teacher = new ResNet(Tiny);
        using (var trainer = new Trainer(teacher, options))
            for (int e = 0; e < options.Epochs; e++) trainer.RunEpoch(e, data.Train, data.Test);
        teacher.eval();
        double teacherAccuracy = Evaluation.Accuracy(teacher.forward, data.Test);
        // Every training label shifted by one class: the labels alone would teach the wrong answer.
        var wrong = data.Train with { Labels = (data.Train.Labels + 1).remainder(10) };
        manual_seed(3);
        using var student = new ResNet(Tiny);
        using (var trainer = new Trainer(student, options) { Distillation = new Distillation(teacher.forward, Weight: 1.0) })
            for (int e = 0; e < options.Epochs; e++) trainer.RunEpoch(e, wrong, data.Test);
        student.eval();
        double studentAccuracy = Evaluation.Accuracy(student.forward, data.Test);
        Assert.True(teacherAccuracy > 0.6, $"teacher {teacherAccuracy}");
        Assert.True(studentAccuracy > 0.5, $"student {studentAccuracy} (teacher {teacherAccuracy})");
    }
}
