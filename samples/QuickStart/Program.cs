// QuickStart: load a ResNet checkpoint, remove its residual connections, verify, save.
//   dotnet run --project samples/QuickStart -- [checkpoint.pth] [output.onnx]
// Without arguments it uses a seeded ResNet-18 and writes quickstart-plain.onnx (and, for step 5, the seeded
// weights as quickstart-resnet18.pth and their conversion as quickstart-plain.safetensors).
using RMNet;
using RMNet.IO;
using RMNet.Models;
using RMNet.Verification;

string? input = args.Length > 0 ? args[0] : null;
string output = args.Length > 1 ? args[1] : "quickstart-plain.onnx";

// 1. Load: the layout (resnet18 ... wide_resnet101_2, or any torchvision-style width) is detected from the weights.
using var original = input is null
    ? ResNetCheckpoint.FromStateDict(RandomResNet.Create(ResNetSpec.Named("resnet18"), seed: 7))
    : ResNetCheckpoint.Load(input);
Console.WriteLine($"loaded {original.Spec.DisplayName}: {original.BlockCount} residual blocks");

// 2. Convert: BN folded, every block reserved and merged; the result has no additions. It owns its weights: dispose it.
using var plain = original.ToPlain();
Console.WriteLine($"plain: {plain.ParameterCount / 1e6:F2}M parameters, {plain.MultiplyAccumulates(224, 224) / 1e9:F2} GMACs at 224x224");

// 3. Verify in process, on seeded random images.
using var runner = ModelRunner.ForModule(plain.ToModule());
var report = Verifier.Verify(original, runner, new VerifyOptions(Samples: 2, InputSize: 224));
Console.WriteLine($"max abs error {report.MaxAbsError:E2}, max rel error {report.MaxRelError:E2}, top-1 agreement {report.Top1Agreement:P0}: {(report.Passed ? "equivalent" : "NOT equivalent")}");

// 4. Save (format by extension: .onnx, .safetensors, .pth) and check the file itself in ONNX Runtime.
ModelWriter.Save(plain, output);
using var onnx = ModelRunner.OpenConverted(output, original);
var fileReport = Verifier.Verify(original, onnx, new VerifyOptions(Samples: 2));
Console.WriteLine($"wrote {output}; ONNX Runtime max rel error {fileReport.MaxRelError:E2}");

// 5. Or all of it in one call, through the front door: checkpoint file in, plain file out, checked.
string checkpoint = input ?? "quickstart-resnet18.pth";
if (input is null)
{
    using var weights = RandomResNet.Create(ResNetSpec.Named("resnet18"), seed: 7);
    StateDictFile.Save(checkpoint, weights.Select(p => (p.Key, p.Value)));
}
var result = Converter.Convert(checkpoint, Path.ChangeExtension(output, ".safetensors"));
Console.WriteLine($"Converter.Convert: {result.Architecture} -> {result.Output}, max rel error {result.Verification.MaxRelError:E2}: {(result.Equivalent ? "equivalent" : "NOT equivalent")}");
return report.Passed && fileReport.Passed && result.Equivalent ? 0 : 1;
