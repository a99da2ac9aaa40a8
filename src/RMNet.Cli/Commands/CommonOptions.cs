using System.CommandLine;

namespace RMNet.Cli.Commands;

/// <summary>Options several commands share, defined once.</summary>
public static class CommonOptions
{
    public static Option<bool> Json() => new("--json") { Description = "Write one JSON document to stdout instead of text (schema in the README)" };

    public static Option<string> Arch() => new("--arch")
    {
        Description = "Architecture: auto (detect from names and shapes) or a torchvision name such as resnet50",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<int?> NumClasses() => new("--num-classes") { Description = "Expected classifier outputs; an error if the checkpoint disagrees" };

    public static Option<double> Tolerance() => new("--tolerance")
    {
        Description = "Largest accepted relative error: max|converted - original| / max|original| per image",
        DefaultValueFactory = _ => 1e-4,
    };

    public static Option<int> Samples() => new("--samples") { Description = "Seeded random images to compare", DefaultValueFactory = _ => 4 };

    public static Option<int> InputSize() => new("--input-size") { Description = "Height and width of the random images", DefaultValueFactory = _ => 224 };

    public static Option<bool> AllowNonFinite() => new("--allow-nonfinite") { Description = "Accept checkpoints with NaN or infinite weights" };

    public static Option<RMNet.Rm.RmMode> RmMode() => new("--rm-mode")
    {
        Description = "Form of the Bottleneck middle convs: grouped (cheapest exact form) or dense (the paper's)",
        DefaultValueFactory = _ => RMNet.Rm.RmMode.Grouped,
    };

    public static Option<RMNet.Rm.NegativeInputMode> NegativeInput() => new("--negative-input")
    {
        Description = "Block inputs that may be negative (pre-activation ResNets): prelu (per-channel activation) or split (relu(x), relu(-x))",
        DefaultValueFactory = _ => RMNet.Rm.NegativeInputMode.PRelu,
    };

    public static Option<long> Seed() => new("--seed") { Description = "Seed of the random images", DefaultValueFactory = _ => 0 };
}
