using RMNet.Plain;
using RMNet.Rm;
using static TorchSharp.torch;

namespace RMNet.Models;

/// <summary>
/// A trained network read from a checkpoint, of any supported family: it runs as the original, reports its
/// cost, and converts to an equivalent plain network. The CLI and the verifier work through this interface,
/// so a new family is one new implementation.
/// </summary>
public interface ISourceModel : IDisposable
{
    /// <summary>The file (or label) the weights came from.</summary>
    string Source { get; }

    /// <summary>The family: "resnet" or "repvgg".</summary>
    string Family { get; }

    /// <summary>The layout's name, e.g. "resnet50" or "RepVGG-A0", or a description of an unnamed layout.</summary>
    string DisplayName { get; }

    /// <summary>One line describing the layout (blocks, classes).</summary>
    string Description { get; }

    /// <summary>Blocks the conversion acts on.</summary>
    int BlockCount { get; }

    /// <summary>Classifier outputs.</summary>
    int NumClasses { get; }

    /// <summary>Channels of the input image.</summary>
    int InputChannels => 3;

    /// <summary>The input height and width the network requires, or null where any size works.</summary>
    int? FixedInputSize => null;

    /// <summary>Parameters and multiply-accumulates of the original, per stage, for one image.</summary>
    IReadOnlyList<StageCost> CostByStage(int height, int width);

    /// <summary>The original network as a TorchSharp module (eval mode).</summary>
    nn.Module<Tensor, Tensor> CreateModule();

    /// <summary>The equivalent plain network.</summary>
    /// <param name="mode">Grouped (default) or dense middle convs, where the family has them.</param>
    /// <param name="progress">Told after each block; null for none.</param>
    /// <param name="cancellationToken">Checked after each block.</param>
    PlainModel ToPlain(RmMode mode = RmMode.Grouped, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default);
}
