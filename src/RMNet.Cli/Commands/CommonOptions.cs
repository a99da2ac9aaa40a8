using System.CommandLine;

namespace RMNet.Cli.Commands;

/// <summary>Options several commands share, defined once.</summary>
internal static class CommonOptions
{
    public static Option<bool> Json() => new("--json") { Description = "Write one JSON document to stdout instead of text (schema in the README)" };

    /// <summary>
    /// <c>--output</c>/<c>-o</c>: required unless <paramref name="defaultValue"/> is given. A value starting with '-' is refused:
    /// it is an option the shell or the user put after -o (<c>-o --json</c>), not a file name (<c>./-x.onnx</c> names such a file).
    /// </summary>
    public static Option<string> Output(string description, string? defaultValue = null)
    {
        var option = new Option<string>("--output", "-o") { Description = description, Required = defaultValue is null };
        if (defaultValue is not null) option.DefaultValueFactory = _ => defaultValue;
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && result.Tokens[^1].Value is var name && name.StartsWith('-'))
                result.AddError($"--output: '{name}' looks like an option, not a file name (for a file named so, write ./{name})");
        });
        return option;
    }

    public static Option<string?> WeightsKey() => new("--weights-key")
    {
        Description = "The training checkpoint's key to read the weights from (e.g. state_dict_ema, model_ema); default: state_dict, model, model_state_dict, net or module",
    };

    public static Option<string> Arch() => new("--arch")
    {
        Description = "Architecture: auto (detect from names and shapes) or a torchvision name such as resnet50",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<int?> NumClasses() => new("--num-classes") { Description = "Expected classifier outputs; an error if the checkpoint disagrees" };

    /// <summary><c>--tolerance</c>: a finite number above 0 (0, a negative bound or NaN would fail or pass everything).</summary>
    public static Option<double> Tolerance()
    {
        var option = new Option<double>("--tolerance")
        {
            Description = "Largest accepted relative error: max|converted - original| / max|original| per image",
            DefaultValueFactory = _ => 1e-4,
        };
        option.Validators.Add(result =>
        {
            if (result is { Implicit: false, Tokens.Count: > 0 } && double.TryParse(result.Tokens[^1].Value, System.Globalization.NumberStyles.Float,
                    System.Globalization.CultureInfo.InvariantCulture, out double v) && !(v > 0 && double.IsFinite(v)))
                result.AddError($"--tolerance: {result.Tokens[^1].Value} is not a finite number above 0");
        });
        return option;
    }

    /// <summary>
    /// <c>--bn-eps</c>: the BatchNorms' epsilon, which a state dict does not hold, for the families lowered into the graph
    /// (each states its default: 1e-5 for timm, Hugging Face and torchvision) and a detector's blocks (1e-3); null where not given.
    /// </summary>
    public static Option<double?> BnEps()
    {
        var option = new Option<double?>("--bn-eps")
        {
            Description = "BatchNorm epsilon of a checkpoint lowered into the graph (timm ResNet-D, RepVGG and MobileOne, Hugging Face ResNet, torchvision RegNet, ACB and DBB MobileNets and ResNets; " +
                "their default 1e-5) " +
                "or of a detector's blocks (YOLOv7 RepConv, YOLOv6 RepVGGBlock; their default 1e-3); a state dict does not store it",
        };
        option.Validators.Add(result =>
        {
            if (result is { Implicit: false, Tokens.Count: > 0 } && double.TryParse(result.Tokens[^1].Value, System.Globalization.NumberStyles.Float,
                    System.Globalization.CultureInfo.InvariantCulture, out double v) && !(v > 0 && double.IsFinite(v)))
                result.AddError($"--bn-eps: {result.Tokens[^1].Value} is not a finite number above 0");
        });
        return option;
    }

    /// <summary>Why <c>--bn-eps</c> is refused for an ONNX model.</summary>
    public const string BnEpsOnOnnx = "--bn-eps applies to checkpoints; an ONNX model's BatchNormalization nodes carry their own epsilon";

    /// <summary><c>--samples</c>, refused below <paramref name="minimum"/> (verify takes 0 with --input: the user's images only).</summary>
    public static Option<int> Samples(int minimum = 1)
    {
        var option = new Option<int>("--samples") { Description = "Seeded random images to compare", DefaultValueFactory = _ => 4 };
        option.Validators.Add(result =>
        {
            if (Given(result) is int n && n < minimum) result.AddError($"--samples: {n} is below {minimum}");
        });
        return option;
    }

    /// <summary>The whole number an option was given on the command line; null where it was not, or is not a whole number (the parser says so).</summary>
    public static int? Given(System.CommandLine.Parsing.OptionResult? result) =>
        result is { Implicit: false, Tokens.Count: > 0 } && int.TryParse(result.Tokens[^1].Value, out int n) ? n : null;

    public static Option<int> InputSize() => new("--input-size") { Description = "Height and width of the random images", DefaultValueFactory = _ => 224 };

    public static Option<bool> AllowNonFinite() => new("--allow-nonfinite") { Description = "Accept checkpoints with NaN or infinite weights" };

    public static Option<RMNet.Rm.RmMode> RmMode() => Choice("--rm-mode",
        "Form of the Bottleneck middle convs: grouped (cheapest exact form) or dense (the paper's)",
        ("grouped", RMNet.Rm.RmMode.Grouped), ("dense", RMNet.Rm.RmMode.Dense));

    public static Option<RMNet.Rm.NegativeInputMode> NegativeInput() => Choice("--negative-input",
        "Block inputs that may be negative (pre-activation ResNets, IResNet; checkpoints and ONNX): prelu (per-channel activation) or split (relu(x), relu(-x))",
        ("prelu", RMNet.Rm.NegativeInputMode.PRelu), ("split", RMNet.Rm.NegativeInputMode.Split));

    /// <summary>
    /// An option whose values are the lower-case names the README uses (the first is the default); any other value
    /// is refused with those names, not with .NET's enum type.
    /// </summary>
    public static Option<T> Choice<T>(string name, string description, params (string Name, T Value)[] choices) where T : struct, Enum
    {
        // The default is default(T), so help prints no "[default: Grouped]" in .NET's spelling; the description gives it.
        if (!EqualityComparer<T>.Default.Equals(default, choices[0].Value))
            throw new ArgumentException($"{name}: the first choice must be {typeof(T).Name}'s default value");
        var option = new Option<T>(name)
        {
            Description = $"{description} [default: {choices[0].Name}]",
            HelpName = string.Join("|", choices.Select(c => c.Name)),
        };
        option.CustomParser = result =>
        {
            string token = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            foreach (var (choice, value) in choices)
                if (string.Equals(choice, token, StringComparison.OrdinalIgnoreCase)) return value;
            result.AddError($"{name}: '{token}' is not one of {string.Join(", ", choices.Select(c => c.Name))}");
            return choices[0].Value;
        };
        return option;
    }

    public static Option<long> Seed() => new("--seed") { Description = "Seed of the random images", DefaultValueFactory = _ => 0 };
}
