using System.Text.Json;
using RMNet.Cli;
using RMNet.Lowering;
using RMNet.Onnx;
using RMNet.Verification;
using Xunit;
using Xunit.Abstractions;

namespace RMNet.Tests;

/// <summary>
/// Checkpoint families lowered into the graph engine: timm's ResNet-D (deep stem, average-pooled shortcuts) and Hugging
/// Face's ResNet, from state dicts (and safetensors) PyTorch saved of modules with those libraries' names
/// (tools/fixtures/make_fixtures.py --lowered, --hf), compared with PyTorch's own outputs.
/// </summary>
public class LoweringTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("timm_resnet_d_basic_narrow.pth", "timm ResNet-D (deep stem, average-pooled shortcuts), Basic blocks 2-2-2, 5 classes")]
    [InlineData("timm_resnet_d_bottleneck_narrow.pth", "timm ResNet-D (deep stem, average-pooled shortcuts), Bottleneck blocks 1-2-1-1, 6 classes")]
    [InlineData("timm_seresnext_d_narrow.pth", "timm ResNet-D (deep stem, average-pooled shortcuts, SE), Bottleneck blocks 1-2-1-1, 6 classes")]
    [InlineData("timm_ecaresnet_d_narrow.pth", "timm ResNet-D (deep stem, average-pooled shortcuts, ECA), Bottleneck blocks 1-2-1-1, 6 classes")]
    [InlineData("timm_resnetrs_narrow.pth", "timm ResNet-D (deep stem, conv stem pool, average-pooled shortcuts, SE), Bottleneck blocks 1-2-1-1, 6 classes")]
    [InlineData("hf_resnet_basic_narrow.safetensors", "Hugging Face ResNet, Basic layers 2-1-1-1, 5 classes")]
    [InlineData("hf_resnet_bottleneck_narrow.pth", "Hugging Face ResNet, Bottleneck layers 1-2-1-1, 6 classes")]
    [InlineData("regnet_x_narrow.pth", "torchvision RegNetX, stages of 1-1-2 blocks, 6 classes")]
    [InlineData("regnet_y_se_narrow.pth", "torchvision RegNetY (SE inside the branch), stages of 1-1-2 blocks, 6 classes")]
    [InlineData("timm_repvgg_narrow.pth", "timm RepVGG, stages of 2-2-1-1 blocks, 5 classes")]
    public void TheLoweredGraphIsTheNetworkPyTorchRan(string file, string description)
    {
        string name = Path.GetFileNameWithoutExtension(file);
        using var sd = IO.CheckpointReader.Read(Fixture.Path_(file));
        var lowered = CheckpointLowerings.Find(sd);
        Assert.NotNull(lowered);
        Assert.Equal(description, lowered!.Description);
        using var dir = Fixture.Temp();
        OnnxModelFile.Save(lowered.Lower(), dir.File("original.onnx"));
        using var ort = new OnnxRuntimeRunner(dir.File("original.onnx"));
        var io = Fixture.Io(name);
        foreach (var key in new[] { "", "_odd" })
        {
            var r = Equivalence.Measure(io["output" + key], ort.Run(io["input" + key]), 1e-5);
            output.WriteLine($"{name}{key}: lowered graph vs PyTorch rel {r.MaxRelError:E2}");
            Assert.True(r.Passed, $"{key}: {r.MaxRelError}");
        }
    }

    [Theory]
    [InlineData("timm_resnet_d_basic_narrow", 32, "grouped", 6)]
    [InlineData("timm_resnet_d_basic_narrow", 32, "dense", 6)]
    [InlineData("timm_resnet_d_bottleneck_narrow", 64, "grouped", 5)]
    [InlineData("timm_resnet_d_bottleneck_narrow", 64, "dense", 5)]
    [InlineData("timm_seresnext_d_narrow", 64, "grouped", 5)]
    [InlineData("timm_seresnext_d_narrow", 64, "dense", 5)]
    [InlineData("timm_ecaresnet_d_narrow", 64, "grouped", 5)]
    [InlineData("timm_ecaresnet_d_narrow", 64, "dense", 5)]
    [InlineData("timm_resnetrs_narrow", 64, "grouped", 5)]
    [InlineData("hf_resnet_basic_narrow.safetensors", 64, "grouped", 5)]
    [InlineData("hf_resnet_bottleneck_narrow", 64, "dense", 5)]
    [InlineData("regnet_x_narrow", 64, "grouped", 4)]
    [InlineData("regnet_x_narrow", 64, "dense", 4)]
    [InlineData("regnet_y_se_narrow", 64, "grouped", 4)]
    [InlineData("regnet_y_se_narrow", 64, "dense", 4)]
    [InlineData("timm_repvgg_narrow", 64, "grouped", 9)]
    public void ConvertsToAPlainNetworkThatEqualsPyTorch(string file, int size, string mode, int joins)
    {
        string name = Path.GetFileNameWithoutExtension(file);
        using var dir = Fixture.Temp();
        string plain = dir.File("plain.onnx");
        var (code, stdout, stderr) = CliHarness.Rmnet("convert", Fixture.Path_(Path.HasExtension(file) ? file : $"{file}.pth"), "-o", plain, "--rm-mode", mode,
            "--verify", "--input-size", size.ToString(), "--strict", "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.StartsWith(name.StartsWith("hf_") ? "Hugging Face ResNet" : name.StartsWith("regnet") ? "torchvision RegNet" : name.Contains("repvgg") ? "timm RepVGG" : "timm ResNet-D",
            json.GetProperty("architecture").GetString());
        Assert.Equal(name.Contains("seresnext") || name.Contains("ecaresnet") || name.Contains("resnetrs") || name.StartsWith("regnet_y") ? joins : 0, json.GetProperty("gates").GetInt32());
        Assert.Equal(joins, json.GetProperty("joins_found").GetInt32());
        Assert.Equal(0, json.GetProperty("joins_remaining").GetInt32());
        var g = new OnnxGraph(OnnxModelFile.Load(plain).Graph, plain);
        // No sum of two computed values (SE's gate adds a constant 1 to its carried channels) and no pooled shortcut remain.
        Assert.DoesNotContain(g.Graph.Node, n => n.OpType is "Add" or "Sum" && n.Input.All(i => g.Producers.ContainsKey(i)) || n.OpType == "AveragePool");
        using var ort = new OnnxRuntimeRunner(plain);
        var io = Fixture.Io(name);
        var r = Equivalence.Measure(io["output"], ort.Run(io["input"]), 1e-5);
        output.WriteLine($"{name} {mode}: plain vs PyTorch at {size} rel {r.MaxRelError:E2}; {g.Graph.Node.Count(n => n.OpType == "Conv")} Conv");
        Assert.True(r.Passed, $"{r.MaxRelError}");
    }

    [Theory]
    [InlineData("timm_resnet_d_bottleneck_narrow.pth", "stem,layer1,layer2,layer3,layer4,head,total", 5)]
    [InlineData("hf_resnet_basic_narrow.safetensors", "stem,resnet.encoder.stages.0,resnet.encoder.stages.1,resnet.encoder.stages.2,resnet.encoder.stages.3,head,total", 5)]
    [InlineData("regnet_y_se_narrow.pth", "stem,trunk_output.block1,trunk_output.block2,trunk_output.block3,head,total", 4)]
    [InlineData("timm_repvgg_narrow.pth", "stem,stages.0,stages.1,stages.2,stages.3,head,total", 7)]
    [InlineData("timm_mobileone_narrow.pth", "stem,stages.0,stages.1,stages.2,stages.3,head,total", 11)]
    [InlineData("acnet_mobilenet_narrow.pth", "stem,stem.0,stem.1,stem.2,stem.3,stem.4,stem.5,head,total", 6)]
    [InlineData("dbb_resnet_bottleneck_narrow.pth", "stem,stage1,stage2,stage3,stage4,head,total", 5)]
    [InlineData("acnet_rcnet_narrow_deploy.pth", "stem,stage1,stage2,stage3,head,total", 6)]
    public void ALoweredCheckpointsJsonCarriesEveryFieldACheckpointsDoesPlusItsJoins(string file, string stages, int blocks)
    {
        using var dir = Fixture.Temp();
        JsonElement Convert(string input, string output)
        {
            var (code, stdout, stderr) = CliHarness.Rmnet("convert", Fixture.Path_(input), "-o", dir.File(output), "--verify", "--input-size", "64", "--json", "--quiet");
            Assert.True(code == 0, stderr);
            return JsonDocument.Parse(stdout).RootElement;
        }
        var checkpoint = Convert("basic_narrow.pth", "checkpoint.onnx");
        var lowered = Convert(file, "lowered.onnx");
        // Every field of a checkpoint's document, of the same JSON kind (blocks: a count), then the graph's.
        foreach (var field in checkpoint.EnumerateObject())
            Assert.True(lowered.TryGetProperty(field.Name, out var value) && value.ValueKind == field.Value.ValueKind, field.Name);
        foreach (var field in new[] { "joins_found", "joins_remaining", "gates", "joins", "graph_blocks", "merged_branches" })
            Assert.True(lowered.TryGetProperty(field, out _), field);
        Assert.Equal(blocks, lowered.GetProperty("blocks").GetInt32());
        Assert.Equal(("grouped", "float32"), (lowered.GetProperty("rm_mode").GetString(), lowered.GetProperty("dtype").GetString()));
        Assert.True(lowered.GetProperty("convert_seconds").GetDouble() > 0);
        // The stages split the graph's own totals: their sum is the whole network before and after.
        var rows = lowered.GetProperty("stages").EnumerateArray().ToList();
        Assert.Equal(stages, string.Join(",", rows.Select(r => r.GetProperty("stage").GetString())));
        foreach (var (side, cost) in new[] { ("original", "parameters"), ("converted", "parameters"), ("original", "macs"), ("converted", "macs") })
        {
            long total = lowered.GetProperty(side).GetProperty(cost).GetInt64();
            Assert.Equal(total, rows[^1].GetProperty($"{side}_{cost}").GetInt64());
            Assert.Equal(total, rows.SkipLast(1).Sum(r => r.GetProperty($"{side}_{cost}").GetInt64()));
        }
    }

    [Fact]
    public void VerifyChecksAConversionAgainstTheLoweredCheckpointAndInspectNamesIt()
    {
        using var dir = Fixture.Temp();
        string checkpoint = Fixture.Path_("hf_resnet_bottleneck_narrow.safetensors"), plain = dir.File("plain.onnx");
        Assert.Equal(0, CliHarness.Rmnet("convert", checkpoint, "-o", plain, "--quiet").Code);
        var (code, stdout, stderr) = CliHarness.Rmnet("verify", checkpoint, plain, "--input-size", "64", "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal("Hugging Face ResNet, Bottleneck layers 1-2-1-1, 6 classes", json.GetProperty("architecture").GetString());
        // Against another network's conversion it fails, and a plain .safetensors is no conversion of it.
        Assert.Equal(0, CliHarness.Rmnet("convert", Fixture.Path_("hf_resnet_basic_narrow.pth"), "-o", dir.File("other.onnx"), "--quiet").Code);
        Assert.Equal(ExitCodes.NotEquivalent, CliHarness.Rmnet("verify", checkpoint, dir.File("other.onnx"), "--quiet").Code);
        // A plain .safetensors written for it runs in TorchSharp against the lowered original.
        Assert.Equal(0, CliHarness.Rmnet("convert", checkpoint, "-o", dir.File("plain.safetensors"), "--quiet").Code);
        var plainVerified = CliHarness.Rmnet("verify", checkpoint, dir.File("plain.safetensors"), "--input-size", "64", "--quiet");
        Assert.Equal(0, plainVerified.Code);
        Assert.Contains("the original in ONNX Runtime, the plain model in TorchSharp", plainVerified.Out);

        var inspect = CliHarness.Inspect(checkpoint);
        Assert.Equal("Hugging Face ResNet, Bottleneck layers 1-2-1-1, 6 classes", inspect.GetProperty("architecture").GetString());
        Assert.Equal(5, inspect.GetProperty("joins_found").GetInt32());
        Assert.Equal("residual", inspect.GetProperty("form").GetString());
    }

    [Fact]
    public void ACheckpointWithWeightsTheLayoutLeavesOutIsRefusedNotVerifiedAgainstALesserGraph()
    {
        // timm's ResNet-blur has ResNet-D's names plus an anti-aliasing blur filter (`aa.filt`) in its strided blocks,
        // which the lowering does not know: lowered without it, the original that verification runs would not be the
        // checkpoint's network.
        using var dir = Fixture.Temp();
        using (var sd = IO.CheckpointReader.Read(Fixture.Path_("timm_resnet_d_basic_narrow.pth")))
            IO.StateDictFile.Save(dir.File("se.pth"), sd.Select(kv => (kv.Key, kv.Value))
                .Append(("layer2.0.aa.filt", TorchSharp.torch.ones(16, 1, 3, 3))));
        foreach (var command in new[] { new[] { "convert", dir.File("se.pth"), "-o", dir.File("plain.onnx"), "--verify" }, new[] { "inspect", dir.File("se.pth") } })
        {
            var (code, _, stderr) = CliHarness.Rmnet(command);
            Assert.Equal(ExitCodes.BadInput, code);
            Assert.Contains("1 tensor(s) the layout does not use ('layer2.0.aa.filt')", stderr);
        }
        Assert.Equal(new[] { "se.pth" }, Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void BnEpsGivesTheEpsilonAStateDictDoesNotHold()
    {
        // BatchNorms with eps 1e-3 and small running variances: read with the default 1e-5 the network is another one.
        using var dir = Fixture.Temp();
        string checkpoint = Fixture.Path_("hf_resnet_bn_eps_1e-3_narrow.pth");
        var io = Fixture.Io("hf_resnet_bn_eps_1e-3_narrow");
        double Error(params string[] extra)
        {
            string plain = dir.File("plain.onnx");
            var (code, _, stderr) = CliHarness.Rmnet(new[] { "convert", checkpoint, "-o", plain, "--force", "--quiet" }.Concat(extra).ToArray());
            Assert.True(code == 0, stderr);
            using var ort = new OnnxRuntimeRunner(plain);
            return Equivalence.Measure(io["output"], ort.Run(io["input"]), 1e-5).MaxRelError;
        }
        double defaultEps = Error(), given = Error("--bn-eps", "1e-3");
        output.WriteLine($"vs PyTorch: default eps rel {defaultEps:E2}, --bn-eps 1e-3 rel {given:E2}");
        Assert.True(defaultEps > 1e-3, $"{defaultEps}");
        Assert.True(given <= 1e-5, $"{given}");
        Assert.Equal(0, CliHarness.Rmnet("verify", checkpoint, dir.File("plain.onnx"), "--bn-eps", "1e-3", "--quiet").Code);
        // Saved whole (torch.save(model)), the file holds each BatchNorm's eps: read without being told.
        checkpoint = Fixture.Path_("hf_resnet_bn_eps_1e-3_narrow_whole.pth");
        double whole = Error();
        output.WriteLine($"whole module, no --bn-eps: rel {whole:E2}");
        Assert.True(whole <= 1e-5, $"{whole}");
        // There the saved values win over --bn-eps, and the run says so.
        var (savedCode, _, savedLog) = CliHarness.Rmnet("convert", checkpoint, "-o", dir.File("saved.onnx"), "--bn-eps", "1e-5");
        Assert.Equal(0, savedCode);
        Assert.Contains("BatchNorm eps as the whole module saved them (1.00E-03), not --bn-eps 1.00E-05", savedLog);
        // A family with its own transform converts with 1e-5: a whole module saved with another eps is refused, not converted wrongly.
        var (wrongEps, _, epsError) = CliHarness.Rmnet("convert", Fixture.Path_("resnet_bn_eps_1e-3_whole.pth"), "-o", dir.File("r.onnx"));
        Assert.Equal(ExitCodes.BadInput, wrongEps);
        Assert.Contains("BatchNorm 'bn1' was saved with eps 0.001; this family is converted with 1E-05, which would not be exact", epsError);

        // Where the family's own transform reads the checkpoint, or the input is ONNX, it is refused, as is a bad value.
        var (refused, _, error) = CliHarness.Rmnet("convert", Fixture.Path_("basic_narrow.pth"), "-o", dir.File("b.onnx"), "--bn-eps", "1e-3");
        Assert.Equal(ExitCodes.BadInput, refused);
        Assert.Contains("--bn-eps applies to checkpoints lowered into the graph", error);
        Assert.Equal(ExitCodes.BadInput, CliHarness.Rmnet("convert", Fixture.Path_("onnx/basic_narrow_opset13.onnx"), "-o", dir.File("b.onnx"), "--bn-eps", "1e-3").Code);
        Assert.Equal(ExitCodes.BadInput, CliHarness.Rmnet("convert", checkpoint, "-o", dir.File("b.onnx"), "--bn-eps", "0").Code);
        Assert.False(File.Exists(dir.File("b.onnx")));
    }

    [Fact]
    public void ACheckpointOfNoKnownFamilyGetsOneMessageNamingWhatWasFoundAndTheClosestFamily()
    {
        // DenseNet-like names: known to no family. Many tensors, so that a hash order would show.
        using var dir = Fixture.Temp();
        IO.StateDictFile.Save(dir.File("densenet.pth"), Enumerable.Range(0, 40).Select(i => (i == 0 ? "features.conv0.weight" : $"features.denseblock1.layer{i}.conv.weight",
            TorchSharp.torch.ones(4, 4, 1, 1))).Append(("classifier.weight", TorchSharp.torch.ones(3, 4))));
        var messages = Enumerable.Range(0, 3).Select(_ => CliHarness.Rmnet("inspect", dir.File("densenet.pth"))).ToList();
        Assert.All(messages, m => Assert.Equal(ExitCodes.BadInput, m.Code));
        Assert.Single(messages.Select(m => m.Err).Distinct());
        string error = messages[0].Err;
        Assert.Contains("not a checkpoint of a family rmnet knows: its first tensor is 'features.conv0.weight' (41 tensors); closest: MobileNetV2 (torchvision) ('features.0.0.weight')", error);
        Assert.Contains("'conv1.0.weight' (timm ResNet-D/SE/ECA/RS)", error);
    }

    [Fact]
    public void AFamilysNamesUnderABackbonePrefixOrWithoutTheirHeadAreNamedAsSuch()
    {
        // mmpretrain's classifiers keep a ResNet under 'backbone.' and its classifier as 'head.fc'; timm's num_classes=0 has no 'fc'.
        using var dir = Fixture.Temp();
        using var resnet = IO.CheckpointReader.Read(Fixture.Path_("basic_narrow.pth"));
        IO.StateDictFile.Save(dir.File("mmpretrain.pth"), resnet.Where(kv => !kv.Key.StartsWith("fc.")).Select(kv => ("backbone." + kv.Key, kv.Value))
            .Concat(resnet.Where(kv => kv.Key.StartsWith("fc.")).Select(kv => ("head." + kv.Key, kv.Value))));
        IO.StateDictFile.Save(dir.File("headless.pth"), resnet.Where(kv => !kv.Key.StartsWith("fc.")).Select(kv => (kv.Key, kv.Value)));
        int underBackbone = resnet.Keys.Count(k => !k.StartsWith("fc."));

        var (code, _, error) = CliHarness.Rmnet("inspect", dir.File("mmpretrain.pth"));
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains($"closest: torchvision ResNet/ResNeXt, SE-ResNet, IResNet, pre-activation and CIFAR ResNets, whose names the {underBackbone} tensors under 'backbone.' " +
            "have after that prefix; rmnet removes only the wrappers module., model., _orig_mod.: save the tensors under 'backbone.'", error);
        // A first name that merely ends as a family's (a DenseNet layer's conv1) is no such prefix: most tensors are elsewhere.
        IO.StateDictFile.Save(dir.File("dense.pth"), Enumerable.Range(0, 30).Select(i => (i == 0 ? "features.block1.layer1.conv1.weight" : $"features.block{i}.conv.weight",
            TorchSharp.torch.ones(4, 4, 1, 1))));
        var (_, _, denseError) = CliHarness.Rmnet("inspect", dir.File("dense.pth"));
        Assert.Contains("its first tensor is 'features.block1.layer1.conv1.weight' (30 tensors)", denseError);
        Assert.DoesNotContain("under 'features.block1.layer1.'", denseError);
        var (headless, _, headlessError) = CliHarness.Rmnet("convert", dir.File("headless.pth"), "-o", dir.File("h.onnx"));
        Assert.Equal(ExitCodes.BadInput, headless);
        Assert.Contains("missing key 'fc.weight': a ResNet without its classifier 'fc' (a headless backbone)", headlessError);
        Assert.False(File.Exists(dir.File("h.onnx")));
    }

    [Fact]
    public void InspectAndBenchSayWhereAResNetDsPooledShortcutsHavePartialWindows()
    {
        // At 36x36 the narrow ResNet-D's layer2 pool sees 9x9 and layer3's 5x5 (PyTorch's output then differs by 0.25, see
        // the verify test); at 64x64 every pooled map is even.
        string checkpoint = Fixture.Path_("timm_resnet_d_basic_narrow.pth");
        var odd = CliHarness.Inspect(checkpoint, "--input-size", "36").GetProperty("partial_shortcut_pools").EnumerateArray()
            .Select(p => (p.GetProperty("join").GetString()!, p.GetProperty("height").GetInt64(), p.GetProperty("width").GetInt64(), p.GetProperty("window").GetInt32())).ToList();
        Assert.Equal(new[] { ("layer2.0.add", 9L, 9L, 2), ("layer3.0.add", 5L, 5L, 2) }, odd);
        Assert.False(CliHarness.Inspect(checkpoint, "--input-size", "64").TryGetProperty("partial_shortcut_pools", out _));
        var (_, text, _) = CliHarness.Rmnet("inspect", checkpoint, "--input-size", "36");
        Assert.Contains("not exact at 36x36: layer2.0.add's shortcut pool layer2.0.downsample.0 (2x2) sees a 9x9 map", text);

        foreach (var (size, exact) in new[] { (36, false), (64, true) })
        {
            var (code, stdout, stderr) = CliHarness.Rmnet("bench", checkpoint, "--batch", "1", "--size", size.ToString(), "--runs", "1", "--warmup", "0", "--json", "--quiet");
            Assert.True(code == 0, stderr);
            var json = JsonDocument.Parse(stdout).RootElement;
            Assert.Equal(exact, json.GetProperty("plain_equivalent").GetBoolean());
            double error = json.GetProperty("plain_max_rel_error").GetDouble();
            output.WriteLine($"bench at {size}: plain vs original {error:E2}");
            Assert.True(exact ? error < 1e-5 : error > 0.05, $"{size}: {error}");
        }
        var (_, benchText, _) = CliHarness.Rmnet("bench", checkpoint, "--batch", "1", "--size", "36", "--runs", "1", "--warmup", "0", "--quiet");
        Assert.Contains("NOT EXACT at 36x36: the plain network differs from the original by", benchText);
    }

    [Theory]
    [InlineData("timm_resnet_d_basic_narrow.pth")]
    [InlineData("onnx/timm_resnet_d_basic_narrow_opset13.onnx")]
    public void ConvertStrictRefusesAResNetDAtASizeWhereItsPooledShortcutsCannotBeExact(string model)
    {
        using var dir = Fixture.Temp();
        string input = Fixture.Path_(model);
        var (strict, stdout, stderr) = CliHarness.Rmnet("convert", input, "-o", dir.File("x.onnx"), "--strict", "--input-size", "36", "--json", "--quiet");
        Assert.Equal(ExitCodes.NotEquivalent, strict);
        // The checkpoint's joins are named as lowered (layer2.0.add), the export's as PyTorch names them (/layer2/layer2.0/Add).
        Assert.Contains("at 36x36 2 block(s) cannot be exact (", stderr);
        Assert.Contains("layer2.0", stderr);
        Assert.Contains(": its shortcut's 2x2 average pool sees a 9x9 map, partial windows", stderr);
        Assert.False(File.Exists(dir.File("x.onnx")));
        var pools = JsonDocument.Parse(stdout).RootElement.GetProperty("partial_shortcut_pools").EnumerateArray().Select(p => p.GetProperty("height").GetInt64());
        Assert.Equal(new[] { 9L, 5L }, pools);

        // Without --strict it is written and each such block reported; at 64x64 --strict passes.
        var (loose, text, looseErr) = CliHarness.Rmnet("convert", input, "-o", dir.File("x.onnx"), "--input-size", "36", "--quiet");
        Assert.True(loose == 0, looseErr);
        Assert.Contains("avg-pool projection shortcut, 2 convs: plain, NOT exact at 36x36: its shortcut's 2x2 average pool sees a 5x5 map", text);
        // verify at that size fails, and says why.
        var (verified, verifyText, _) = CliHarness.Rmnet("verify", input, dir.File("x.onnx"), "--input-size", "36", "--samples", "1", "--quiet");
        Assert.Equal(ExitCodes.NotEquivalent, verified);
        Assert.Contains("not exact at 36x36 by design: ", verifyText);
        Assert.Contains("shortcut pools a 9x9 map in 2x2 windows", verifyText);
        var verifyJson = JsonDocument.Parse(CliHarness.Rmnet("verify", input, dir.File("x.onnx"), "--input-size", "36", "--samples", "1", "--json", "--quiet").Out).RootElement;
        Assert.Equal(2, verifyJson.GetProperty("partial_shortcut_pools").GetArrayLength());
        var (even, _, evenErr) = CliHarness.Rmnet("convert", input, "-o", dir.File("y.onnx"), "--strict", "--input-size", "64", "--quiet");
        Assert.True(even == 0, evenErr);
    }

    [Fact]
    public void BenchRunsTheLoweredOriginalAgainstItsPlainNetworkInOnnxRuntime()
    {
        string checkpoint = Fixture.Path_("regnet_y_se_narrow.pth");
        var (code, stdout, stderr) = CliHarness.Rmnet("bench", checkpoint, "--batch", "2", "--size", "64", "--runs", "2", "--warmup", "1", "--json", "--quiet");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.True(json.GetProperty("original").GetProperty("median_ms").GetDouble() > 0);
        Assert.True(json.GetProperty("converted").GetProperty("median_ms").GetDouble() > 0);
        var (refused, _, error) = CliHarness.Rmnet("bench", checkpoint, "--runtime", "torchsharp");
        Assert.Equal(ExitCodes.BadInput, refused);
        Assert.Contains("is lowered into the graph and benchmarked with --runtime onnxruntime", error);
    }

    [Fact]
    public void BenchTakesBnEpsWhereConvertDoes()
    {
        // Taken for a lowered checkpoint, refused as convert refuses it: another family, an ONNX model, a value not above 0.
        string[] Bench(string model, string eps) => new[] { "bench", Fixture.Path_(model), "--bn-eps", eps, "--batch", "1", "--size", "64", "--runs", "1", "--warmup", "0", "--quiet" };
        var (code, _, stderr) = CliHarness.Rmnet(Bench("hf_resnet_bn_eps_1e-3_narrow.pth", "1e-3"));
        Assert.True(code == 0, stderr);
        var (family, _, familyError) = CliHarness.Rmnet(Bench("basic_narrow.pth", "1e-3"));
        Assert.Equal(ExitCodes.BadInput, family);
        Assert.Contains("--bn-eps applies to checkpoints lowered into the graph", familyError);
        var (onnx, _, onnxError) = CliHarness.Rmnet(Bench("onnx/basic_narrow_opset13.onnx", "1e-3"));
        Assert.Equal(ExitCodes.BadInput, onnx);
        Assert.Contains("an ONNX model's BatchNormalization nodes carry their own epsilon", onnxError);
        var (zero, _, zeroError) = CliHarness.Rmnet(Bench("hf_resnet_bn_eps_1e-3_narrow.pth", "0"));
        Assert.Equal(ExitCodes.BadInput, zero);
        Assert.Contains("--bn-eps: 0 is not a finite number above 0", zeroError);
    }

    [Theory]
    [InlineData("regnet_y_se_narrow.pth", "plain.safetensors", 64)]
    [InlineData("regnet_y_se_narrow.pth", "plain.pth", 64)]
    [InlineData("timm_seresnext_d_narrow.pth", "plain.pth", 64)]
    [InlineData("timm_ecaresnet_d_narrow.pth", "plain.safetensors", 64)]
    [InlineData("timm_repvgg_narrow.pth", "plain.safetensors", 64)]
    [InlineData("timm_mobileone_narrow.pth", "plain.safetensors", 64)]
    [InlineData("dbb_mobilenet_narrow.pth", "plain.pth", 64)]
    [InlineData("dbb_resnet_basic_narrow.pth", "plain.pth", 64)]
    [InlineData("acnet_resnet_bottleneck_narrow.pth", "plain.safetensors", 64)]
    [InlineData("acnet_rcnet_narrow.pth", "plain.pth", 32)]   // RCNet's 8x8 pool: PyTorch's input is CIFAR's 32x32
    [InlineData("hf_resnet_bottleneck_narrow.pth", "plain.pth", 64)]
    [InlineData("onnx/preact_basic_narrow_opset13.onnx", "plain.safetensors", 64)]   // x.mean((2, 3)) head: ReduceMean without keepdims
    [InlineData("onnx/mobilenet_v2_narrow_opset13.onnx", "plain.pth", 64)]           // Clip and per-channel Max/Min
    [InlineData("onnx/se_bottleneck_narrow_opset13.onnx", "plain.pth", 64)]          // SE gates
    [InlineData("onnx/iresnet18_narrow_opset13.onnx", "plain.safetensors", 112)]     // PRelu, flatten + linear head
    public void ThePlainGraphIsAlsoWrittenAsSafetensorsOrPthAndEqualsPyTorch(string input, string file, int size)
    {
        // A lowered checkpoint or an ONNX model: the plain graph read back into a plain model, loaded and run against PyTorch.
        string name = Path.GetFileName(input).Replace("_opset13.onnx", "").Replace(".pth", "");
        using var dir = Fixture.Temp();
        var (code, _, stderr) = CliHarness.Rmnet("convert", Fixture.Path_(input), "-o", dir.File(file), "--verify", "--input-size", size.ToString(), "--quiet");
        Assert.True(code == 0, stderr);
        using var plain = IO.PlainModelFile.Load(dir.File(file));
        var io = Fixture.Io(name);
        var r = Equivalence.Measure(io["output"], plain.Forward(io["input"]), 1e-5);
        output.WriteLine($"{input} -> {file}: {plain.ParameterCount} parameters, vs PyTorch rel {r.MaxRelError:E2}");
        Assert.True(r.Passed, $"{r.MaxRelError}");
    }

    [Fact]
    public void AGraphWithAJoinLeftIsNoPlainChainAndSaysWhere()
    {
        string input = Fixture.Path_("onnx/unplainable_narrow_opset13.onnx");
        var converted = OnnxConversion.Convert(input).Model;
        var e = Assert.Throws<ModelInputException>(() => PlainGraphReader.Read(converted, input));
        Assert.Contains("the converted graph is not a plain chain at", e.Message);
        Assert.Contains("write it as .onnx", e.Message);
    }

    /// <summary>
    /// inspect names a lowered checkpoint's form as the official RepVGG's is named: a re-parameterisable family in
    /// training form is multi-branch, in deploy form plain; a ResNet-D residual. Its classes are its classifier's outputs.
    /// </summary>
    [Theory]
    [InlineData("timm_repvgg_narrow.pth", "multi-branch", 5)]
    [InlineData("timm_mobileone_narrow.pth", "multi-branch", 5)]
    [InlineData("timm_mobileone_narrow_deploy.pth", "plain", 5)]
    [InlineData("dbb_mobilenet_narrow.pth", "multi-branch", 5)]
    // The DBB repository's ResNets are residual in either form: their shortcuts are joins until the passes remove them.
    [InlineData("dbb_resnet_basic_narrow.pth", "residual", 5)]
    [InlineData("acnet_resnet_bottleneck_narrow_deploy.pth", "residual", 5)]
    [InlineData("acnet_rcnet_narrow.pth", "residual", 10)]
    [InlineData("acnet_imagenet_resnet_narrow_deploy.pth", "residual", 5)]
    [InlineData("timm_resnet_d_basic_narrow.pth", "residual", 5)]
    public void InspectNamesALoweredCheckpointsForm(string file, string form, int classes)
    {
        var json = CliHarness.Inspect(Fixture.Path_(file));
        Assert.Equal(form, json.GetProperty("form").GetString());
        Assert.Equal(classes, json.GetProperty("num_classes").GetInt32());
    }

    public static IEnumerable<object[]> BrokenCheckpoints() => new[]
    {
        new object[] { "regnet_x_narrow.pth", "trunk_output.block2.block2-0.f.b.1.running_var", new long[] { 7 }, float.NaN,
            "key 'trunk_output.block2.block2-0.f.b.1.running_var' has shape [7], expected [16]" },
        new object[] { "regnet_x_narrow.pth", "trunk_output.block1.block1-0.f.a.0.weight", new long[] { 8, 3, 1, 1 }, 1f,
            "key 'trunk_output.block1.block1-0.f.a.0.weight' has shape [8, 3, 1, 1], expected [out, 8, kh, kw] for its 8-channel input" },
        new object[] { "regnet_x_narrow.pth", "stem.1.weight", new long[] { 7 }, 1f, "key 'stem.1.weight' has shape [7], expected [8]" },
        new object[] { "regnet_x_narrow.pth", "trunk_output.block1.block1-0.f.a.0.weight", null!, float.NaN, "holds NaN or infinite values (pass --allow-nonfinite" },
        new object[] { "regnet_x_narrow.pth", "trunk_output.block1.block1-0.f.a.1.running_var", null!, -1f, "has a value <= -eps" },
        // The trial found these converted (or failing in ONNX Runtime, exit 3): an even kernel breaks the size the sum
        // after it needs; a 3x3 conv_scale or a 2-d ECA conv is no module of the family's.
        new object[] { "timm_resnet_d_basic_narrow.pth", "layer2.0.conv2.weight", new long[] { 16, 16, 3, 2 }, 0.1f,
            "key 'layer2.0.conv2.weight' has shape [16, 16, 3, 2], expected [out, in/groups, kh, kw] with kh and kw odd" },
        new object[] { "timm_mobileone_narrow.pth", "stages.0.0.conv_scale.conv.weight", new long[] { 8, 1, 3, 3 }, 0.1f,
            "key 'stages.0.0.conv_scale.conv.weight' has shape [8, 1, 3, 3], expected [out, in/groups, 1, 1]" },
        new object[] { "timm_ecaresnet_d_narrow.pth", "layer1.0.se.conv.weight", new long[] { 1, 1, 3, 3 }, 0.1f,
            "key 'layer1.0.se.conv.weight' has shape [1, 1, 3, 3], expected [1, 1, k] (a 1-d conv across the channels)" },
    };

    [Theory]
    [MemberData(nameof(BrokenCheckpoints))]
    public void ALoweredCheckpointWithABadTensorIsRefusedNamingIt(string fixture, string key, long[]? shape, float value, string message)
    {
        // A wrong shape, a NaN or a negative variance: one line naming the tensor and exit 2, never a graph with NaN
        // outputs or an internal error from deep inside the math.
        using var dir = Fixture.Temp();
        using (var sd = IO.CheckpointReader.Read(Fixture.Path_(fixture)))
            IO.StateDictFile.Save(dir.File("bad.pth"), sd.Select(kv => (kv.Key, kv.Key != key ? kv.Value
                : shape is not null ? TorchSharp.torch.full(shape, float.IsNaN(value) ? 1f : value) : TorchSharp.torch.full_like(kv.Value, value))));
        foreach (var command in new[] { "convert", "inspect" })
        {
            var (code, _, stderr) = command == "convert"
                ? CliHarness.Rmnet("convert", dir.File("bad.pth"), "-o", dir.File("plain.onnx"))
                : CliHarness.Rmnet("inspect", dir.File("bad.pth"));
            Assert.Equal(ExitCodes.BadInput, code);
            string error = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("rmnet: error:"));
            Assert.Contains(message, error);
        }
        Assert.False(File.Exists(dir.File("plain.onnx")));
    }

    [Fact]
    public void AtASizeWithAnOddPooledMapVerificationFailsAndNothingIsWritten()
    {
        using var dir = Fixture.Temp();
        string plain = dir.File("plain.onnx");
        // 36: the second stage's input is 9x9, so its shortcut's 2x2 average pool has partial windows.
        var (code, _, stderr) = CliHarness.Rmnet("convert", Fixture.Path_("timm_resnet_d_basic_narrow.pth"), "-o", plain, "--verify", "--input-size", "36", "--quiet");
        output.WriteLine(stderr);
        Assert.Equal(ExitCodes.NotEquivalent, code);
        Assert.Contains("converted model differs from the original", stderr);
        Assert.False(File.Exists(plain));
        // PyTorch's output at 36 is not what the plain network computes there: the report's condition is real.
        var (ok, _, _) = CliHarness.Rmnet("convert", Fixture.Path_("timm_resnet_d_basic_narrow.pth"), "-o", plain, "--quiet");
        Assert.Equal(0, ok);
        using var ort = new OnnxRuntimeRunner(plain);
        var io = Fixture.Io("timm_resnet_d_basic_narrow");
        Assert.False(Equivalence.Measure(io["output_odd"], ort.Run(io["input_odd"]), 1e-4).Passed);
    }

    [Theory]
    [InlineData("plain.onnx", "--dtype, --relu-only, --arch and --num-classes do not apply", "--dtype", "float16")]
    [InlineData("plain.onnx", "--dtype, --relu-only, --arch and --num-classes do not apply", "--arch", "resnet18")]
    public void OptionsTheGraphEngineCannotHonourAreRefused(string file, string message, params string[] extra)
    {
        using var dir = Fixture.Temp();
        var (code, _, stderr) = CliHarness.Rmnet(new[] { "convert", Fixture.Path_("timm_resnet_d_basic_narrow.pth"), "-o", dir.File(file) }.Concat(extra).ToArray());
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains(message, stderr);
        Assert.Single(stderr.Trim().Split('\n'), l => l.StartsWith("rmnet: error"));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
