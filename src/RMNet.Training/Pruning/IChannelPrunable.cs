using RMNet.Plain;
using static TorchSharp.torch;

namespace RMNet.Pruning;

/// <summary>
/// A network RM pruning trains and cuts: the trainable module, the scales of its prunable channels grouped as the
/// convs of its plain form, and that plain form with channels removed.
/// </summary>
internal interface IChannelPrunable : IDisposable
{
    /// <summary>The module that is trained (sparsity, fine-tuning) and evaluated.</summary>
    nn.Module<Tensor, Tensor> Network { get; }

    /// <summary>One entry per conv of the plain form, in order, each as long as that conv's output channels.</summary>
    IReadOnlyList<ChannelScales> Scales { get; }

    /// <summary>
    /// The plain network <see cref="Network"/> computes in eval mode, BN and scales folded, keeping the channels
    /// <paramref name="keep"/> marks (per conv; null keeps all). Exact where every dropped channel is masked.
    /// </summary>
    PlainModel ToPlain(IReadOnlyList<bool[]>? keep = null);
}
