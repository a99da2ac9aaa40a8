using RMNet.Data;
using RMNet.IO;
using RMNet.Models;
using RMNet.Plain;
using RMNet.Pruning;
using RMNet.Rm;
using RMNet.Training;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RMNet.Tests;

[Collection("Training")]
public class PruningTests(ITestOutputHelper output)
{
    static ResNetCheckpoint Checkpoint(string fixture) => ResNetCheckpoint.Load(Fixture.Path_(fixture + ".pth"));

    static ResNetCheckpoint Cifar() => Checkpoint("cifar_narrow");

    static Tensor RealImages(int n)
    {
        using var data = FashionMnist.Load(Fixture.FashionSubset);
        return data.Test.Images.narrow(0, 0, n).clone();
    }

    /// <summary>
    /// Images for a fixture: Fashion-MNIST for the 1-channel CIFAR-style one, seeded values in [0, 1) (as pixels are)
    /// of the reference input's shape for the torchvision-style one (3 channels, 7x7 stem and max pool).
    /// </summary>
    static Tensor ImagesFor(string fixture, int n)
    {
        if (fixture == "cifar_narrow") return RealImages(n);
        var shape = Fixture.Io(fixture)["input"].shape;
        return rand(new[] { n, shape[1], shape[2], shape[3] }, generator: new Generator(11));
    }

    [Fact]
    public void CalibratedScaledNetEqualsTheOriginalResNet()
    {
        using var ckpt = Cifar();
        using var net = new ScaledPlainNet(ckpt.ToPlain(RmMode.Dense));
        net.Calibrate(RealImages(128));
        net.Calibrate(RealImages(64));   // calibrating again re-derives the shifts from the plain biases
        var io = Fixture.Io("cifar_narrow");
        var report = Equivalence.Measure(io["output"], net.forward(io["input"]), 1e-5);
        output.WriteLine($"scaled net vs PyTorch: rel {report.MaxRelError:E2}");
        Assert.True(report.Passed, $"max rel error {report.MaxRelError}");
        // Scales start at each channel's own spread, not at 1: what sparsity training then shrinks.
        using (NewDisposeScope()) Assert.True(net.Norms[0].weight!.std().item<float>() > 0);
    }

    [Fact]
    public void ChannelRemovalEqualsTheMaskedNetworkExactly()
    {
        using var ckpt = Cifar();
        var plain = ckpt.ToPlain(RmMode.Dense);
        using var net = new ScaledPlainNet(plain);
        var images = RealImages(64);
        net.Calibrate(images);
        var generator = new Generator(3);
        var keep = net.Scales.Select(s => rand(new long[] { s.Count }, generator: generator).data<float>().Select((v, i) => i == 0 || v > 0.4f).ToArray()).ToList();
        ChannelScales.Mask(net.Scales, keep);
        var pruned = net.ToPlain(keep);
        Assert.Equal(keep.Select(k => (long)k.Count(x => x)), pruned.Convs.Select(c => c.OutChannels));
        var report = Equivalence.Compare(net.forward, pruned.Forward, images, 1e-5);
        output.WriteLine($"pruned vs masked: rel {report.MaxRelError:E2}, {pruned.ParameterCount} of {plain.ParameterCount} parameters");
        Assert.True(report.Passed, $"max rel error {report.MaxRelError}");
        // The cost model predicts the pruned network's MACs exactly.
        var cost = CostModels.Plain(plain, 28, 28);
        Assert.Equal(plain.MultiplyAccumulates(28, 28), cost.Macs(plain.Convs.Select(c => (int)c.OutChannels).ToList()));
        Assert.Equal(pruned.MultiplyAccumulates(28, 28), cost.Macs(keep.Select(k => k.Count(x => x)).ToList()));
    }

    [Fact]
    public void MasksHoldThroughTrainingSteps()
    {
        using var ckpt = Cifar();
        using var net = new ScaledPlainNet(ckpt.ToPlain(RmMode.Dense));
        using var data = FashionMnist.Load(Fixture.FashionSubset);
        net.Calibrate(data.Train.Images.narrow(0, 0, 64));
        var keep = net.Scales.Select(s => Enumerable.Range(0, s.Count).Select(i => i % 3 != 1).ToArray()).ToList();
        void Apply() { ChannelScales.Mask(net.Scales, keep); }
        Apply();
        var options = new TrainOptions(Epochs: 1, BatchSize: 64, LearningRate: 0.05);
        using var trainer = new Trainer(net, options) { AfterStep = Apply };
        trainer.RunEpoch(0, data.Train.Take(128), data.Test.Take(64));
        for (int i = 0; i < keep.Count; i++)
            for (int c = 0; c < keep[i].Length; c++)
                if (!keep[i][c])
                    using (NewDisposeScope()) Assert.Equal(0f, net.Norms[i].weight![c].item<float>());
        var pruned = net.ToPlain(keep);
        var report = Equivalence.Compare(net.forward, pruned.Forward, data.Test.Images.narrow(0, 0, 32), 1e-5);
        Assert.True(report.Passed, $"max rel error {report.MaxRelError}");
    }

    [Fact]
    public void TrainingBranchesStartSilentAndFoldIntoTheirConvsAfterTraining()
    {
        using var ckpt = Cifar();
        using var data = FashionMnist.Load(Fixture.FashionSubset);
        var calibration = data.Train.Images.narrow(0, 0, 128);
        // A pruned plain network, as fine-tuning gets it: the dense RM form cut so that one conv keeps as many
        // channels as it reads (where an identity branch fits) and another loses some.
        using var dense = new ScaledPlainNet(ckpt.ToPlain(RmMode.Dense));
        dense.Calibrate(calibration);
        var widths = dense.Convs.Select(c => (int)c.weight!.shape[0]).ToList();
        var keep = widths.Select((w, i) => Enumerable.Range(0, w).Select(c => i switch { 1 => c < widths[0], 2 => c % 2 == 0 || c == 0, _ => true }).ToArray()).ToList();
        ChannelScales.Mask(dense.Scales, keep);
        var pruned = dense.ToPlain(keep);
        using var net = new ScaledPlainNet(pruned, trainingBranches: true);
        net.Calibrate(calibration);
        // Silent at the start: the branched network computes the masked one.
        var images = data.Test.Images.narrow(0, 0, 64);
        var start = Equivalence.Compare(dense.forward, net.forward, images, 1e-5);
        Assert.True(start.Passed, $"max rel error {start.MaxRelError}");
        // A branch beside every 3x3 conv; an identity exactly where the conv keeps width and resolution.
        var convs = pruned.Convs.ToList();
        Assert.All(net.Branches, b => Assert.NotNull(b));
        Assert.Equal(convs.Select(c => c.InChannels == c.OutChannels && c.StrideH == 1), net.Branches.Select(b => b!.HasIdentity));
        Assert.True(net.Branches[1]!.HasIdentity);

        var options = new TrainOptions(Epochs: 1, BatchSize: 32, LearningRate: 0.05);
        using (var trainer = new Trainer(net, options)) trainer.RunEpoch(0, data.Train.Take(256), data.Test.Take(64));
        net.eval();
        // The branches learned (their BatchNorm weights left zero), and the export folds them in exactly.
        Dictionary<string, float> branchWeights;
        using (NewDisposeScope())   // holds the temporaries: a finalised one could be freed while libtorch still reads it
            branchWeights = net.named_parameters().Where(p => p.name.StartsWith("branch", StringComparison.Ordinal) && p.name.EndsWith(".weight", StringComparison.Ordinal) && !p.name.Contains(".conv."))
                .ToDictionary(p => p.name, p => p.parameter.abs().max().item<float>());
        output.WriteLine(string.Join(", ", branchWeights.Select(w => $"{w.Key}: max {w.Value:E2}")));
        Assert.All(branchWeights, w => Assert.True(w.Value > 1e-6f, w.Key));
        var folded = net.ToPlain();
        Assert.Equal(convs.Select(c => c.Weight.shape), folded.Convs.Select(c => c.Weight.shape));
        var report = Equivalence.Compare(net.forward, folded.Forward, images, 1e-5);
        var unfolded = Equivalence.Compare(net.forward, WithoutBranches(net).Forward, images, 1e-5);
        output.WriteLine($"trained branches folded: rel {report.MaxRelError:E2}; without them the export differs by {unfolded.MaxRelError:E2}");
        Assert.True(report.Passed, $"max rel error {report.MaxRelError}");
        Assert.False(unfolded.Passed);   // what they learned is not negligible
        Assert.Throws<RmException>(() => net.ToPlain(net.Scales.Select(s => Enumerable.Repeat(true, s.Count).ToArray()).ToList()));
    }

    /// <summary>The models of a <c>rmnet prune --json</c> report, by their "model" name.</summary>
    static Dictionary<string, System.Text.Json.JsonElement> ModelsByName(System.Text.Json.JsonElement report) =>
        report.GetProperty("models").EnumerateArray().ToDictionary(m => m.GetProperty("model").GetString()!);

    /// <inheritdoc cref="ModelsByName(System.Text.Json.JsonElement)"/>
    static Dictionary<string, System.Text.Json.JsonElement> ModelsByName(string stdout) => ModelsByName(System.Text.Json.JsonDocument.Parse(stdout).RootElement);

    /// <summary>
    /// <c>rmnet prune</c> of the narrow CIFAR ResNet to half its MACs in a second or so: 128 training and 64 test
    /// images, one epoch per stage, blocks of 2 channels; <paramref name="extra"/> follows.
    /// </summary>
    static string[] QuickPrune(string output, params string[] extra) =>
    [
        "prune", Fixture.Path_("cifar_narrow.pth"), "-o", output, "--data", Fixture.FashionSubset, "--train-limit", "128", "--test-limit", "64",
        "--sparsity-epochs", "1", "--finetune-epochs", "1", "--target-flops", "0.5", "--channel-multiple", "2", .. extra,
    ];

    /// <summary>The network's convs and BatchNorms folded without its branches: what forgetting to fold them would export.</summary>
    static PlainModel WithoutBranches(ScaledPlainNet net)
    {
        var bare = net.state_dict().Where(kv => !kv.Key.StartsWith("branch", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
        using var copy = new ScaledPlainNet(net.ToPlain());   // same layer shapes
        copy.load_state_dict(bare, strict: true);
        return copy.ToPlain();
    }

    [Theory]
    [InlineData("cifar_narrow")]
    [InlineData("basic_narrow")]
    public void GatedResNetAtUnitGatesEqualsPyTorchAndItsPlainForm(string fixture)
    {
        using var ckpt = Checkpoint(fixture);
        using var gated = new GatedResNet(ckpt);
        var io = Fixture.Io(fixture);
        var residual = Equivalence.Measure(io["output"], gated.Network.forward(io["input"]), 1e-5);
        var plain = gated.ToPlain();
        var folded = Equivalence.Measure(io["output"], plain.Forward(io["input"]), 1e-5);
        output.WriteLine($"gated vs PyTorch: rel {residual.MaxRelError:E2}; its plain form: rel {folded.MaxRelError:E2}");
        Assert.True(residual.Passed && folded.Passed, $"{residual.MaxRelError} {folded.MaxRelError}");
        // One scale list per plain conv, each as long as that conv's output: the dense RM form of the ResNet.
        var dense = ckpt.ToPlain(RmMode.Dense);
        Assert.Equal(dense.Convs.Select(c => (int)c.OutChannels), gated.Scales.Select(s => s.Count));
        Assert.Equal(dense.Convs.Select(c => c.Weight.shape), plain.Convs.Select(c => c.Weight.shape));
    }

    [Theory]
    [InlineData("cifar_narrow")]
    [InlineData("basic_narrow")]
    public void GatesOfAnySignFoldIntoThePlainFormExactly(string fixture)
    {
        using var ckpt = Checkpoint(fixture);
        using var gated = new GatedResNet(ckpt);
        var generator = new Generator(5);
        using (no_grad())
            foreach (var p in gated.Model.named_parameters().Where(p => p.name.Contains("gates.")))
                p.parameter.copy_(rand(p.parameter.shape, generator: generator) * 3 - 1);   // in [-1, 2): negative reserve gates cut the shortcut
        var images = ImagesFor(fixture, 32);
        var report = Equivalence.Compare(gated.Network.forward, gated.ToPlain().Forward, images, 1e-5);
        output.WriteLine($"randomly gated vs its plain form: rel {report.MaxRelError:E2}");
        Assert.True(report.Passed, $"max rel error {report.MaxRelError}");
        // Not the ungated network any more: the gates act.
        using var original = ckpt.CreateModule();
        Assert.False(Equivalence.Compare(original.forward, gated.Network.forward, images, 1e-3).Passed);
    }

    [Theory]
    [InlineData("cifar_narrow")]
    [InlineData("basic_narrow")]
    public void GatedChannelRemovalEqualsTheMaskedNetworkIncludingReservedChannels(string fixture)
    {
        using var ckpt = Checkpoint(fixture);
        using var gated = new GatedResNet(ckpt);
        var generator = new Generator(7);
        var keep = gated.Scales.Select(s => rand(new long[] { s.Count }, generator: generator).data<float>().Select((v, i) => i == 0 || v > 0.4f).ToArray()).ToList();
        ChannelScales.Mask(gated.Scales, keep);
        var pruned = gated.ToPlain(keep);
        Assert.Equal(keep.Select(k => (long)k.Count(x => x)), pruned.Convs.Select(c => c.OutChannels));
        // Reserved channels went too: the first plain conv of block 1 carries the block input first.
        Assert.Contains(false, keep[1].Take((int)ckpt.Spec.StemWidth));
        var images = ImagesFor(fixture, 32);
        var report = Equivalence.Compare(gated.Network.forward, pruned.Forward, images, 1e-5);
        output.WriteLine($"pruned plain vs masked gated ResNet: rel {report.MaxRelError:E2}, {pruned.ParameterCount} parameters");
        Assert.True(report.Passed, $"max rel error {report.MaxRelError}");
        var cost = CostModels.Plain(ckpt.ToPlain(RmMode.Dense), 28, 28);
        Assert.Equal(pruned.MultiplyAccumulates(28, 28), cost.Macs(keep.Select(k => k.Count(x => x)).ToList()));
    }

    [Fact]
    public void GateMasksHoldThroughTrainingStepsInResidualForm()
    {
        using var ckpt = Cifar();
        using var gated = new GatedResNet(ckpt);
        var keep = gated.Scales.Select(s => Enumerable.Range(0, s.Count).Select(i => i % 3 != 1).ToArray()).ToList();
        var images = RealImages(32);
        using var data = FashionMnist.Load(Fixture.FashionSubset);
        void Apply() { ChannelScales.Mask(gated.Scales, keep); }
        Apply();
        using var trainer = new Trainer(gated.Network, new TrainOptions(Epochs: 1, BatchSize: 64, LearningRate: 0.05)) { AfterStep = Apply };
        trainer.RunEpoch(0, data.Train.Take(128), data.Test.Take(64));
        var after = Equivalence.Compare(gated.Network.forward, gated.ToPlain(keep).Forward, images, 1e-5);
        Assert.True(after.Passed, $"after training: max rel error {after.MaxRelError}");
    }

    [Fact]
    public void ResidualChannelRemovalEqualsTheMaskedResNet()
    {
        using var ckpt = Cifar();
        using var net = ckpt.CreateResNet();
        var scales = ResidualPruning.InnerScales(net);
        Assert.Equal(4, scales.Count);
        var keep = scales.Select((s, b) => Enumerable.Range(0, (int)s.weight!.shape[0]).Select(c => (c + b) % 2 == 0).ToArray()).ToList();
        ChannelScales.Mask(scales.Select(ChannelScales.Of).ToList(), keep);
        var sd = new StateDict("masked");
        foreach (var (key, t) in net.state_dict()) sd.Add(key, t.detach());
        var prunedSd = ResidualPruning.RemoveChannels(sd, ckpt.Spec, keep, "pruned");
        using var pruned = ResNetCheckpoint.FromStateDict(prunedSd);
        Assert.Equal(keep.Select(k => k.Count(x => x)), pruned.Spec.BlockWidths!);
        var images = RealImages(32);
        var report = Equivalence.Compare(net.forward, pruned.CreateModule().forward, images, 1e-5);
        Assert.True(report.Passed, $"max rel error {report.MaxRelError}");
        var cost = CostModels.ResidualInner(ckpt.Spec, 28, 28);
        Assert.Equal(ResNetCost.MultiplyAccumulates(ckpt.Spec, 28, 28), cost.Macs(ckpt.Spec.Blocks().Select(b => b.Width).ToList()));
        Assert.Equal(ResNetCost.MultiplyAccumulates(pruned.Spec, 28, 28), cost.Macs(pruned.Spec.BlockWidths!));
    }

    /// <summary>Two layers of four channels in a chain: MACs = 10*n0 (input side) + 2*n0*n1 + 3*n1 (classifier side), 84 in full.</summary>
    static (ChannelCostModel Cost, List<float[]> Importance) TwoLayerChain()
    {
        var cost = new ChannelCostModel(2);
        cost.AddLinear(0, 10);
        cost.AddPair(0, 1, 2);
        cost.AddLinear(1, 3);
        return (cost, new List<float[]> { new[] { 0.9f, 0.1f, 0.5f, 0.8f }, new[] { 0.05f, 0.7f, 0.3f, 0.6f } });
    }

    [Fact]
    public void GlobalSelectionRemovesTheLeastImportantChannelsUntilTheTarget()
    {
        var (cost, importance) = TwoLayerChain();
        // Full: 40 + 32 + 12 = 84. Removing by rank: l1c0 (0.05): n=(4,3) 40+24+9=73; l0c1 (0.1): (3,3) 30+18+9=57;
        // l1c2 (0.3): (3,2) 30+12+6=48 <= 50: stop.
        var plan = ChannelSelection.Select(importance, cost, 50, minKeepFraction: 0.25);
        Assert.Equal(84, plan.MacsBefore);
        Assert.Equal(48, plan.MacsAfter);
        Assert.Equal(new[] { true, false, true, true }, plan.Keep[0]);
        Assert.Equal(new[] { false, true, false, true }, plan.Keep[1]);
        Assert.Equal(0.3, plan.Threshold, 5);
        // In blocks of two: l1 loses c0 and c2 (0.05, 0.3): (4,2) 40+16+6=62; l0 loses c1 and c2 (0.1, 0.5): (2,2) 20+8+6=34.
        var blocks = ChannelSelection.Select(importance, cost, 50, minKeepFraction: 0.25, channelMultiple: 2);
        Assert.Equal(34, blocks.MacsAfter);
        Assert.Equal(new[] { true, false, false, true }, blocks.Keep[0]);
        Assert.Equal(new[] { false, true, false, true }, blocks.Keep[1]);
        // A target below what the minimum widths cost is refused, not silently missed.
        Assert.Throws<RmException>(() => ChannelSelection.Select(importance, cost, 10, minKeepFraction: 0.25));
    }

    [Fact]
    public void PerMacSelectionRemovesTheLeastImportancePerMacSaved()
    {
        var (cost, importance) = TwoLayerChain();
        // (4,4): l0c1 0.1 saves 10+2*4=18 (0.0056/MAC), l1c0 0.05 saves 2*4+3=11 (0.0045): l1c0 -> 73.
        // (4,3): l0c1 0.1 saves 16 (0.0063), l1c2 0.3 saves 11 (0.027): l0c1 -> 57.
        // (3,3): l0c2 0.5 saves 16 (0.031), l1c2 0.3 saves 9 (0.033): l0c2, the more important channel but the
        // cheaper loss per MAC -> (2,3) 20+12+9 = 41 <= 50. Ranking by importance alone removes l1c2 instead (48).
        var plan = ChannelSelection.SelectPerMac(importance, cost, 50, minKeepFraction: 0.25);
        Assert.Equal(84, plan.MacsBefore);
        Assert.Equal(41, plan.MacsAfter);
        Assert.Equal(new[] { true, false, false, true }, plan.Keep[0]);
        Assert.Equal(new[] { false, true, true, true }, plan.Keep[1]);
        Assert.Equal(0.5 / 16, plan.Threshold, 5);
        // Blocks of two, each block's importance the sum of its channels: l1 (c0, c2: 0.35 for 84-62=22 MACs, 0.016)
        // before l0 (c1, c2: 0.6 for 84-48=36, 0.017); then only l0 may still lose a block: (2,2) 34.
        var blocks = ChannelSelection.SelectPerMac(importance, cost, 50, minKeepFraction: 0.25, channelMultiple: 2);
        Assert.Equal(34, blocks.MacsAfter);
        Assert.Equal(new[] { true, false, false, true }, blocks.Keep[0]);
        Assert.Equal(new[] { false, true, false, true }, blocks.Keep[1]);
        // Channels already removed (importance 0) stay removed even where the target needs less: a later round of
        // the Taylor pruner, whose allowance lies above what the last round reached, must not bring them back.
        var removed = new List<float[]> { new[] { 0.9f, 0f, 0.5f, 0.8f }, new[] { 0f, 0.7f, 0.3f, 0.6f } };
        foreach (var again in new[] { ChannelSelection.SelectPerMac(removed, cost, 80, 0.25), ChannelSelection.Select(removed, cost, 80, 0.25) })
        {
            Assert.Equal(new[] { true, false, true, true }, again.Keep[0]);
            Assert.Equal(new[] { false, true, true, true }, again.Keep[1]);
            Assert.Equal((84, 57), (again.MacsBefore, again.MacsAfter));
        }
        Assert.Throws<RmException>(() => ChannelSelection.SelectPerMac(importance, cost, 10, minKeepFraction: 0.25));
    }

    [Fact]
    public void PruneCommandRunsEveryStageResumesAndExportsAnEquivalentModel()
    {
        using var dir = Fixture.Temp();
        string[] args =
        {
            "prune", Fixture.Path_("cifar_narrow.pth"), "-o", dir.File("p.onnx"), "--data", Fixture.FashionSubset, "--train-limit", "256",
            "--test-limit", "100", "--sparsity-epochs", "1", "--finetune-epochs", "1", "--compare-residual", "--target-flops", "0.5", "--channel-multiple", "2", "--json",
        };
        var (code, stdout, stderr) = CliHarness.Rmnet(args);
        Assert.True(code == 0, stderr);
        foreach (var stage in new[] { "training while pruning by Taylor saliency", "pruned to", "fine-tuning", "wrote" }) Assert.Contains(stage, stderr);
        var report = System.Text.Json.JsonDocument.Parse(stdout).RootElement;
        var models = ModelsByName(report);
        Assert.Equal(new[] { "original", "plain", "rm-pruned", "residual-pruned" }, models.Keys);
        long original = models["original"].GetProperty("macs").GetInt64();
        foreach (var name in new[] { "rm-pruned", "residual-pruned" })
        {
            Assert.InRange(models[name].GetProperty("macs").GetInt64(), 1, original / 2);
            Assert.True(models[name].GetProperty("equivalence").GetProperty("max_rel_error").GetDouble() < 1e-5);
            Assert.InRange(models[name].GetProperty("test_accuracy").GetDouble(), 0.0, 1.0);
        }
        Assert.True(File.Exists(dir.File("p.onnx")) && File.Exists(dir.File("p.residual.onnx")) && File.Exists(dir.File("p.residual.pth")));
        // The exported ONNX model computes what rmnet's pruned plain model computes.
        var plain = RMNet.IO.PlainModelFile.Load(dir.File("p.onnx.work/rm-pruned.safetensors"));
        using (var ort = new RMNet.Onnx.OnnxRuntimeRunner(dir.File("p.onnx")))
        {
            var x = RealImages(16);
            Assert.True(Equivalence.Compare(plain.Forward, t => ort.Run(t), x, 1e-5).Passed);
        }
        byte[] first = File.ReadAllBytes(dir.File("p.onnx"));
        // A re-run resumes from the saved stages (no training) and writes the same model.
        var again = CliHarness.Rmnet(args.Append("--force").ToArray());
        Assert.True(again.Code == 0, again.Err);
        Assert.Contains("resuming", again.Err);
        Assert.Contains("plan read", again.Err);
        Assert.Equal(first, File.ReadAllBytes(dir.File("p.onnx")));
        // A new target in the same work folder keeps the L1 sparsity training and redoes the plan and what follows
        // (the default Taylor criterion prunes while training, so with it the target is part of that stage).
        var l1 = args.Append("--criterion").Append("l1").Append("--force").ToArray();
        Assert.True(CliHarness.Rmnet(l1).Code == 0);
        var retarget = CliHarness.Rmnet(l1.Select(a => a == "0.5" ? "0.4" : a).ToArray());
        Assert.True(retarget.Code == 0, retarget.Err);
        Assert.Contains("the pruning target changed; sparsity training kept: discarded", retarget.Err);
        Assert.Contains("sparsity training (L1 0.01", retarget.Err);
        Assert.Contains("resuming", retarget.Err);
        var models2 = ModelsByName(retarget.Out);
        Assert.InRange(models2["rm-pruned"].GetProperty("macs").GetInt64(), 1, (long)(original * 0.4));
        // New training settings discard everything.
        var fresh = CliHarness.Rmnet(args.Select(a => a == "256" ? "128" : a).Append("--force").ToArray());
        Assert.True(fresh.Code == 0, fresh.Err);
        Assert.Contains("training form changed: discarded", fresh.Err);
        Assert.Contains("residual-finetuned.pth", fresh.Err);
        Assert.DoesNotContain("resuming", fresh.Err);
    }

    [Fact]
    public void ResidualComparisonPrunesToItsOwnTargetAndRedoesOnlyItselfWhenThatChanges()
    {
        using var dir = Fixture.Temp();
        string[] args = QuickPrune(dir.File("p.onnx"), "--compare-residual", "--residual-target-flops", "0.4", "--json");
        var first = CliHarness.Rmnet(args);
        Assert.True(first.Code == 0, first.Err);
        var report = System.Text.Json.JsonDocument.Parse(first.Out).RootElement;
        Assert.Equal(0.4, report.GetProperty("residual_target_flops").GetDouble());
        var models = ModelsByName(report);
        long original = models["original"].GetProperty("macs").GetInt64();
        long rmTarget = (long)(0.5 * original), residualTarget = (long)(0.4 * original);
        // Each model was pruned to its own target, and each still equals the network it was made from.
        Assert.Matches($@"rm: pruned to .*\(target {System.Text.RegularExpressions.Regex.Escape(rmTarget.ToString("N0"))}\)", first.Err);
        Assert.Matches($@"residual: pruned to .*\(target {System.Text.RegularExpressions.Regex.Escape(residualTarget.ToString("N0"))}\)", first.Err);
        Assert.InRange(models["rm-pruned"].GetProperty("macs").GetInt64(), 1, rmTarget);
        Assert.InRange(models["residual-pruned"].GetProperty("macs").GetInt64(), 1, residualTarget);
        foreach (var name in new[] { "rm-pruned", "residual-pruned" })
            Assert.True(models[name].GetProperty("equivalence").GetProperty("max_rel_error").GetDouble() < 1e-5);
        // A new target for one model redoes that model alone: the other's stages are read back and its output is unchanged.
        string Retarget(string rmFlops, string residualFlops, string discardMessage, string keptModel, string keptFile)
        {
            byte[] before = File.ReadAllBytes(dir.File(keptFile));
            var rerun = CliHarness.Rmnet(args.Select(a => a == "0.5" ? rmFlops : a == "0.4" ? residualFlops : a).Append("--force").ToArray());
            Assert.True(rerun.Code == 0, rerun.Err);
            Assert.Contains(discardMessage, rerun.Err);
            Assert.Contains($"{keptModel}: pruning plan read", rerun.Err);
            Assert.Contains($"{(keptModel == "rm" ? "residual" : "rm")}: training while pruning", rerun.Err);
            Assert.Equal(before, File.ReadAllBytes(dir.File(keptFile)));
            return rerun.Out;
        }
        var residualRetargeted = Retarget("0.5", "0.45", "the residual comparison's target changed, and a Taylor criterion prunes while training; the RM model's stages kept: discarded residual-", "rm", "p.onnx");
        Assert.InRange(ModelsByName(residualRetargeted)["residual-pruned"].GetProperty("macs").GetInt64(), 1, (long)(0.45 * original));
        // With the comparison's own target held at 0.45, a new RM target (equal to it, so no longer recorded apart) redoes the RM model alone.
        var rmRetargeted = Retarget("0.45", "0.45", "the residual comparison, whose target is unchanged, kept: discarded rm-", "residual", "p.residual.pth");
        Assert.InRange(ModelsByName(rmRetargeted)["rm-pruned"].GetProperty("macs").GetInt64(), 1, (long)(0.45 * original));

        // The option belongs to the comparison and is a fraction; either mistake is refused before any work.
        var alone = CliHarness.Rmnet("prune", Fixture.Path_("cifar_narrow.pth"), "-o", dir.File("a.onnx"), "--data", Fixture.FashionSubset, "--residual-target-flops", "0.4");
        Assert.Equal(2, alone.Code);
        Assert.Contains("--residual-target-flops needs --compare-residual", alone.Err);
        var whole = CliHarness.Rmnet("prune", Fixture.Path_("cifar_narrow.pth"), "-o", dir.File("a.onnx"), "--data", Fixture.FashionSubset, "--compare-residual", "--residual-target-flops", "1.5");
        Assert.Equal(2, whole.Code);
        Assert.Contains("--residual-target-flops must be between 0 and 1", whole.Err);
        Assert.False(File.Exists(dir.File("a.onnx")));
    }

    [Fact]
    public void PlainTrainFormPrunesThePlainNetworkItself()
    {
        using var dir = Fixture.Temp();
        var (code, stdout, stderr) = CliHarness.Rmnet(QuickPrune(dir.File("p.safetensors"), "--train-form", "plain", "--json"));
        Assert.True(code == 0, stderr);
        Assert.Contains("BatchNorms on the plain network, trained in plain form", stderr);
        var models = ModelsByName(stdout);
        Assert.True(models["rm-pruned"].GetProperty("equivalence").GetProperty("max_rel_error").GetDouble() < 1e-5);
        Assert.InRange(models["rm-pruned"].GetProperty("macs").GetInt64(), 1, models["original"].GetProperty("macs").GetInt64() / 2);
        // The residual form needs Basic blocks; a Bottleneck ResNet is refused with the reason, before any work.
        var refused = CliHarness.Rmnet("prune", Fixture.Path_("bottleneck_narrow.pth"), "-o", dir.File("b.onnx"), "--data", Fixture.FashionSubset, "--train-form", "residual");
        Assert.Equal(2, refused.Code);
        Assert.Contains("--train-form residual needs a Basic-block ResNet", refused.Err);
        Assert.False(File.Exists(dir.File("b.onnx")));
    }

    [Fact]
    public void PlainFinetuneFormTrainsThePrunedPlainNetworkAndItsCarriedChannels()
    {
        using var dir = Fixture.Temp();
        string[] args = QuickPrune(dir.File("p.safetensors"), "--compare-residual", "--json");
        var plain = CliHarness.Rmnet(args);   // plain is the default fine-tuning form
        Assert.True(plain.Code == 0, plain.Err);
        // The cut network starts as exactly the masked gated ResNet it was cut from.
        var start = System.Text.RegularExpressions.Regex.Match(plain.Err, @"fine-tuning the pruned plain network itself \((\d+) channels.*equals the pruned gated ResNet: max rel error ([\d.E+-]+)");
        Assert.True(start.Success, plain.Err);
        Assert.True(double.Parse(start.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) < 1e-5);
        var models = ModelsByName(plain.Out);
        Assert.True(models["rm-pruned"].GetProperty("equivalence").GetProperty("max_rel_error").GetDouble() < 1e-5);
        Assert.InRange(models["rm-pruned"].GetProperty("macs").GetInt64(), 1, models["original"].GetProperty("macs").GetInt64() / 2);
        var plan = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dir.File("p.safetensors.work/rm-plan.json"))).RootElement.GetProperty("keep")
            .EnumerateArray().Select(k => k.EnumerateArray().Select(b => b.GetBoolean()).ToArray()).ToList();
        Assert.Equal(int.Parse(start.Groups[1].Value), plan.Sum(k => k.Count(x => x)));
        var learned = CarriedKernelEntries(PlainModelFile.Load(dir.File("p.safetensors")), plan);

        // Fine-tuned in residual form instead (the same work folder: only the RM fine-tuning is redone), the carried
        // channels stay scaled Dirac kernels; in plain form they learned other entries as well.
        var residual = CliHarness.Rmnet(args.Append("--finetune-form").Append("residual").Append("--force").ToArray());
        Assert.True(residual.Code == 0, residual.Err);
        Assert.Contains("the fine-tuning form or its training-time branches changed; earlier stages and the residual comparison kept: discarded rm-finetuned.pth", residual.Err);
        Assert.Contains("residual: fine-tuning the pruned network: resuming", residual.Err);
        var dirac = CarriedKernelEntries(PlainModelFile.Load(dir.File("p.safetensors")), plan);
        Assert.NotEmpty(dirac);
        Assert.Equal(dirac.Count, learned.Count);
        Assert.All(dirac, n => Assert.InRange(n, 0, 1));
        Assert.Contains(learned, n => n > 1);

        // With RepVGG training-time branches: the RM fine-tuning is redone, the branches start silent (the cut still
        // equals the gated network) and fold into the same convs (the export equals the branched network, at the same MACs).
        var branched = CliHarness.Rmnet(args.Append("--finetune-branches").Append("--force").ToArray());
        Assert.True(branched.Code == 0, branched.Err);
        Assert.Contains("the fine-tuning form or its training-time branches changed; earlier stages and the residual comparison kept: discarded rm-finetuned.pth", branched.Err);
        var withBranches = System.Text.RegularExpressions.Regex.Match(branched.Err, @"training-time branches beside (\d+) of (\d+) convs.*equals the pruned gated ResNet: max rel error ([\d.E+-]+)");
        Assert.True(withBranches.Success, branched.Err);
        Assert.Equal(withBranches.Groups[2].Value, withBranches.Groups[1].Value);   // every conv of the CIFAR layout is a centred 3x3
        Assert.True(double.Parse(withBranches.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture) < 1e-5);
        var branchedModels = ModelsByName(branched.Out);
        Assert.True(branchedModels["rm-pruned"].GetProperty("equivalence").GetProperty("max_rel_error").GetDouble() < 1e-5);
        Assert.Equal(models["rm-pruned"].GetProperty("macs").GetInt64(), branchedModels["rm-pruned"].GetProperty("macs").GetInt64());
        Assert.Equal(models["rm-pruned"].GetProperty("parameters").GetInt64(), branchedModels["rm-pruned"].GetProperty("parameters").GetInt64());

        // A network trained in plain form has no residual form to fine-tune; the branches go only beside the cut's convs.
        foreach (var (extra, message) in new[]
        {
            (new[] { "--train-form", "plain", "--finetune-form", "residual" }, "--finetune-form residual needs --train-form residual"),
            (new[] { "--finetune-form", "residual", "--finetune-branches" }, "--finetune-branches needs --train-form residual and --finetune-form plain"),
            (new[] { "--train-form", "plain", "--finetune-branches" }, "--finetune-branches needs --train-form residual and --finetune-form plain"),
        })
        {
            var refused = CliHarness.Rmnet(new[] { "prune", Fixture.Path_("cifar_narrow.pth"), "-o", dir.File("r.onnx"), "--data", Fixture.FashionSubset }.Concat(extra).ToArray());
            Assert.Equal(2, refused.Code);
            Assert.Contains(message, refused.Err);
            Assert.False(File.Exists(dir.File("r.onnx")));
        }
    }

    /// <summary>
    /// Nonzero kernel entries of each carried channel of a pruned RM network: the channels of every block's first
    /// conv that carry its input (they come first in the dense layout, as many as the layer before has channels).
    /// </summary>
    static List<int> CarriedKernelEntries(PlainModel pruned, IReadOnlyList<bool[]> keep)
    {
        var convs = pruned.Convs.ToList();
        var counts = new List<int>();
        for (int i = 1; i < convs.Count; i += 2)
        {
            int carried = keep[i].Take(keep[i - 1].Length).Count(k => k);
            using var kernels = convs[i].Weight.narrow(0, 0, carried).reshape(carried, -1).ne(0).sum(1);
            counts.AddRange(kernels.data<long>().ToArray().Select(n => (int)n));
        }
        return counts;
    }

    [Theory]
    [InlineData("taylor", "Taylor saliency (4 rounds")]
    [InlineData("taylor-per-mac", "Taylor saliency per MAC (4 rounds")]
    public void TaylorCriterionPrunesInRoundsWhileTrainingDownToTheTarget(string criterion, string logged)
    {
        using var dir = Fixture.Temp();
        // 128 images in batches of 32: 4 steps an epoch, so each of the first epoch's 4 rounds ends on its own step.
        var (code, stdout, stderr) = CliHarness.Rmnet("prune", Fixture.Path_("cifar_narrow.pth"), "-o", dir.File("p.onnx"), "--data", Fixture.FashionSubset,
            "--train-limit", "128", "--test-limit", "64", "--batch", "32", "--sparsity-epochs", "2", "--finetune-epochs", "1", "--target-flops", "0.5",
            "--channel-multiple", "2", "--criterion", criterion, "--json");
        Assert.True(code == 0, stderr);
        Assert.Contains("training while pruning by " + logged, stderr);
        var rounds = stderr.Split('\n').Where(l => l.Contains(": pruning round ")).ToList();
        Assert.Equal(4, rounds.Count);
        // The MACs allowed fall on the cubic schedule and each round meets its allowance.
        var macs = rounds.Select(l => System.Text.RegularExpressions.Regex.Match(l, @"channels, ([\d,]+) MACs \(allowed ([\d,]+)\)"))
            .Select(m => (After: long.Parse(m.Groups[1].Value.Replace(",", "")), Allowed: long.Parse(m.Groups[2].Value.Replace(",", "")))).ToList();
        Assert.All(macs, m => Assert.True(m.After <= m.Allowed));
        Assert.True(macs.Zip(macs.Skip(1)).All(p => p.Second.Allowed < p.First.Allowed));
        // A round only ever removes more: it never brings back what an earlier one removed.
        Assert.True(macs.Zip(macs.Skip(1)).All(p => p.Second.After <= p.First.After));
        var models = ModelsByName(stdout);
        long target = models["original"].GetProperty("macs").GetInt64() / 2;
        Assert.Equal(target, macs[^1].Allowed, 1.0);
        Assert.InRange(models["rm-pruned"].GetProperty("macs").GetInt64(), 1, target);
        Assert.True(models["rm-pruned"].GetProperty("equivalence").GetProperty("max_rel_error").GetDouble() < 1e-5);
    }

    [Fact]
    public void TaylorScheduleFallsCubicallyFromTheFullNetworkToTheTarget()
    {
        Assert.Equal(1000, GradualTaylorPruning.Allowance(0, 8, 1000, 200));
        Assert.Equal(200 + 800 / 8, GradualTaylorPruning.Allowance(4, 8, 1000, 200));
        Assert.Equal(200, GradualTaylorPruning.Allowance(8, 8, 1000, 200));
    }

    [Fact]
    public void TheLibraryAndTheCliShareOneChannelMultiple()
    {
        Assert.Equal(8, new PruneSettings(0.5, 3, 0.01, 3, new TrainOptions()).ChannelMultiple);
        var (_, help, _) = CliHarness.Rmnet("prune", "--help");
        Assert.Matches(@"--channel-multiple[^\n]*\[default: 8\]", help);
    }

    [Fact]
    public void WorkFolderKeepsWhatANewSettingDoesNotTouch()
    {
        using var dir = Fixture.Temp();
        string work = dir.File("w");
        var settings = new PruneSettings(0.5, 3, 0.01, 8, new TrainOptions()) { Criterion = PruningCriterion.L1 };
        Assert.Empty(PruneWorkFolder.Prepare(work, "m.pth", settings, restart: false));
        File.WriteAllText(Path.Combine(work, "rm-finetuned.pth"), "stage");
        // A folder from before --distill existed (no "Distill" recorded) fine-tuned without it: more epochs extend.
        string path = Path.Combine(work, "settings.json");
        var saved = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
        saved["finetune"]!.AsObject().Remove("Distill");
        File.WriteAllText(path, saved.ToJsonString());
        Assert.Equal(new[] { "fine-tuning extended from 8 to 16 epochs" }, PruneWorkFolder.Prepare(work, "m.pth", settings with { FinetuneEpochs = 16 }, false));
        Assert.True(File.Exists(Path.Combine(work, "rm-finetuned.pth")));
        // A new distillation weight redoes the fine-tuning, and only that.
        var messages = PruneWorkFolder.Prepare(work, "m.pth", settings with { FinetuneEpochs = 16, Distill = 0.5 }, false);
        Assert.Equal("the distillation weight changed; earlier stages kept: discarded rm-finetuned.pth", Assert.Single(messages));
        // Another training form starts afresh.
        File.WriteAllText(Path.Combine(work, "rm-sparse.pth"), "stage");
        messages = PruneWorkFolder.Prepare(work, "m.pth", settings with { FinetuneEpochs = 16, Distill = 0.5, Form = TrainForm.Plain }, false);
        Assert.Contains("training form changed: discarded rm-sparse.pth", Assert.Single(messages));
        // So does another criterion; the default (L1) leaves older folders' settings as they were.
        File.WriteAllText(Path.Combine(work, "rm-sparse.pth"), "stage");
        var plainForm = settings with { FinetuneEpochs = 16, Distill = 0.5, Form = TrainForm.Plain };
        Assert.Empty(PruneWorkFolder.Prepare(work, "m.pth", plainForm with { Criterion = PruningCriterion.L1 }, false));
        messages = PruneWorkFolder.Prepare(work, "m.pth", plainForm with { Criterion = PruningCriterion.Taylor }, false);
        Assert.Contains("criterion or training form changed: discarded rm-sparse.pth", Assert.Single(messages));
        // With it a new target redoes the sparsity stage too: its rounds pruned to the old target.
        File.WriteAllText(Path.Combine(work, "rm-sparse.pth"), "stage");
        messages = PruneWorkFolder.Prepare(work, "m.pth", plainForm with { Criterion = PruningCriterion.Taylor, TargetFlops = 0.4 }, false);
        Assert.Equal("the pruning target changed, and a Taylor criterion prunes while training: discarded rm-sparse.pth", Assert.Single(messages));
        // With L1 a new residual target keeps both sparsity stages and the RM model's, and redoes the comparison's plan and fine-tuning.
        var l1 = plainForm with { Criterion = PruningCriterion.L1 };
        Assert.Single(PruneWorkFolder.Prepare(work, "m.pth", l1, false));   // the criterion changed back
        foreach (var stage in new[] { "rm-sparse.pth", "rm-plan.json", "rm-finetuned.pth", "residual-sparse.pth", "residual-plan.json", "residual-finetuned.pth" })
            File.WriteAllText(Path.Combine(work, stage), "stage");
        messages = PruneWorkFolder.Prepare(work, "m.pth", l1 with { ResidualTargetFlops = 0.3 }, false);
        Assert.Equal("the residual comparison's target changed; its sparsity training and the RM model's stages kept: discarded residual-finetuned.pth, residual-plan.json",
            Assert.Single(messages));
        Assert.Empty(PruneWorkFolder.Prepare(work, "m.pth", l1 with { ResidualTargetFlops = 0.3 }, false));
        // Back to the shared target: the comparison's own stages go again; a residual target equal to the RM one is the same as none.
        File.WriteAllText(Path.Combine(work, "residual-plan.json"), "stage");
        Assert.Single(PruneWorkFolder.Prepare(work, "m.pth", l1 with { ResidualTargetFlops = 0.5 }, false));
        Assert.Empty(PruneWorkFolder.Prepare(work, "m.pth", l1, false));
        Assert.True(new[] { "rm-sparse.pth", "rm-plan.json", "rm-finetuned.pth", "residual-sparse.pth" }.All(f => File.Exists(Path.Combine(work, f))));
        // A new RM target with the comparison's held where it was redoes the RM model's plan and fine-tuning alone.
        File.WriteAllText(Path.Combine(work, "residual-plan.json"), "stage");
        messages = PruneWorkFolder.Prepare(work, "m.pth", l1 with { TargetFlops = 0.4, ResidualTargetFlops = 0.5 }, false);
        Assert.Equal("the pruning target changed; sparsity training and the residual comparison, whose target is unchanged, kept: discarded rm-finetuned.pth, rm-plan.json",
            Assert.Single(messages));
        Assert.True(new[] { "rm-sparse.pth", "residual-sparse.pth", "residual-plan.json" }.All(f => File.Exists(Path.Combine(work, f))));
    }

    [Fact]
    public void AFolderFineTunedInResidualFormRedoesOnlyTheRmFineTuningInPlainForm()
    {
        using var dir = Fixture.Temp();
        string work = dir.File("w");
        // Folders from before plain-form fine-tuning record no form: they read as residual-form fine-tuning.
        var residualForm = new PruneSettings(0.5, 3, 0.01, 8, new TrainOptions()) { FinetuneForm = TrainForm.Residual };
        Assert.Empty(PruneWorkFolder.Prepare(work, "m.pth", residualForm, restart: false));
        Assert.DoesNotContain("Form\": \"Plain", File.ReadAllText(Path.Combine(work, "settings.json")));
        foreach (var stage in new[] { "rm-sparse.pth", "rm-finetuned.pth", "residual-finetuned.pth" }) File.WriteAllText(Path.Combine(work, stage), "stage");
        var messages = PruneWorkFolder.Prepare(work, "m.pth", residualForm with { FinetuneForm = TrainForm.Plain }, false);
        Assert.Equal("the fine-tuning form or its training-time branches changed; earlier stages and the residual comparison kept: discarded rm-finetuned.pth", Assert.Single(messages));
        Assert.True(File.Exists(Path.Combine(work, "rm-sparse.pth")) && File.Exists(Path.Combine(work, "residual-finetuned.pth")));
        // With more epochs too, the residual comparison's fine-tuning is extended.
        File.WriteAllText(Path.Combine(work, "rm-finetuned.pth"), "stage");
        messages = PruneWorkFolder.Prepare(work, "m.pth", residualForm with { FinetuneEpochs = 16 }, false);
        Assert.Equal(new[] { "the fine-tuning form or its training-time branches changed; earlier stages and the residual comparison kept: discarded rm-finetuned.pth",
            "fine-tuning extended from 8 to 16 epochs" }, messages);
        // Training-time branches change only the RM fine-tuning too; asked again, nothing is discarded.
        var branched = residualForm with { FinetuneEpochs = 16, FinetuneForm = TrainForm.Plain, FinetuneBranches = true };
        File.WriteAllText(Path.Combine(work, "rm-finetuned.pth"), "stage");
        messages = PruneWorkFolder.Prepare(work, "m.pth", branched, false);
        Assert.Equal("the fine-tuning form or its training-time branches changed; earlier stages and the residual comparison kept: discarded rm-finetuned.pth", Assert.Single(messages));
        File.WriteAllText(Path.Combine(work, "rm-finetuned.pth"), "stage");
        Assert.Empty(PruneWorkFolder.Prepare(work, "m.pth", branched, false));
        Assert.Single(PruneWorkFolder.Prepare(work, "m.pth", branched with { FinetuneBranches = false }, false));
        Assert.False(File.Exists(Path.Combine(work, "rm-finetuned.pth")));
    }

    [Fact]
    public void AnUnreachableTargetIsRefusedWithTheReason()
    {
        using var dir = Fixture.Temp();
        // cifar_narrow's 8-channel layers cannot shrink in blocks of 8, so a tenth of the MACs is out of reach.
        var (code, _, stderr) = CliHarness.Rmnet("prune", Fixture.Path_("cifar_narrow.pth"), "-o", dir.File("p.onnx"), "--data", Fixture.FashionSubset,
            "--train-limit", "64", "--test-limit", "32", "--sparsity-epochs", "5", "--finetune-epochs", "5", "--target-flops", "0.1");
        Assert.Equal(2, code);
        Assert.Contains("cannot be reached", stderr);
        // Refused before any training: no sparsity stage was started.
        Assert.DoesNotContain("sparsity training", stderr);
        Assert.DoesNotContain("training while pruning", stderr);
        Assert.False(File.Exists(dir.File("p.onnx")));
        // A fifth of the MACs is within the plain network's reach in blocks of 2 but not the ResNet's, whose stem
        // and stream stay whole: with --compare-residual that is refused before the RM pruning trains, not after.
        var residual = CliHarness.Rmnet("prune", Fixture.Path_("cifar_narrow.pth"), "-o", dir.File("r.onnx"), "--data", Fixture.FashionSubset,
            "--train-limit", "64", "--test-limit", "32", "--sparsity-epochs", "1", "--finetune-epochs", "1", "--target-flops", "0.2",
            "--channel-multiple", "2", "--compare-residual");
        Assert.Equal(2, residual.Code);
        Assert.Contains("the residual-constrained comparison (--compare-residual): the target of", residual.Err);
        Assert.DoesNotContain("training while pruning", residual.Err);
        Assert.False(File.Exists(dir.File("r.onnx")));
        var alone = CliHarness.Rmnet("prune", Fixture.Path_("cifar_narrow.pth"), "-o", dir.File("r.onnx"), "--data", Fixture.FashionSubset,
            "--train-limit", "64", "--test-limit", "32", "--sparsity-epochs", "1", "--finetune-epochs", "0", "--target-flops", "0.2",
            "--channel-multiple", "2");
        Assert.True(alone.Code == 0, alone.Err);
    }

    [Fact]
    public void TrainCommandRefusesMissingDataWithOneLine()
    {
        using var dir = Fixture.Temp();
        var (code, _, stderr) = CliHarness.Rmnet("train", "--data", dir.File("none"), "-o", dir.File("m.pth"), "--epochs", "1");
        Assert.Equal(2, code);
        Assert.Single(stderr.Trim().Split('\n'), l => l.StartsWith("rmnet: error:"));
        Assert.Contains("data folder not found", stderr);
        Assert.False(File.Exists(dir.File("m.pth")));
    }
}
