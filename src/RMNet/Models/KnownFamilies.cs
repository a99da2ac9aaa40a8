namespace RMNet.Models;

/// <summary>
/// The checkpoint families rmnet recognises, by the names their first tensors have, for the one message a checkpoint
/// of none of them gets: what was found, what each family starts with, and the closest one.
/// </summary>
internal static class KnownFamilies
{
    /// <summary>A family and the key its state dict starts with (as PyTorch saves it: module order).</summary>
    static readonly (string Family, string FirstKey)[] Starts =
    {
        ("torchvision ResNet/ResNeXt, SE-ResNet, IResNet, pre-activation and CIFAR ResNets", "conv1.weight"),
        ("timm ResNet-D/SE/ECA/RS", "conv1.0.weight"),
        ("MobileNetV2 (torchvision)", "features.0.0.weight"),
        ("RepVGG (official)", "stage0.rbr_dense.conv.weight"),
        ("timm RepVGG", "stem.conv_kxk.conv.weight"),
        ("timm MobileOne", "stem.conv_kxk.0.conv.weight"),
        ("ACNet (ACBlock) MobileNet", "conv1.square_conv.weight"),
        ("DBB (DiverseBranchBlock) MobileNet", "conv1.dbb_origin.conv.weight"),
        // Its stem is a 7x7 ConvBN in either block's ResNet (convnet_utils keeps kernels of 7 and above plain).
        ("ACNet (ACBlock) and DBB (DiverseBranchBlock) ResNets (the DBB repository's)", "stage0.conv1.conv.weight"),
        // ACNetBuilder's Conv2dBNReLU holds the 3x3 stem's ACBlock as 'acb'.
        ("ACNet (ACBlock) RCNet (the ACNet repository's CIFAR ResNet)", "conv1.acb.square_conv.weight"),
        // Its 7x7 stem stays the base builder's ConvBN (ACNetBuilder switches kernels from 2 to 6).
        ("ACNet (ACBlock) ResNet (the ACNet repository's)", "conv1.conv.weight"),
        ("torchvision RegNet", "stem.0.weight"),
        ("Hugging Face ResNet", "resnet.embedder.embedder.convolution.weight"),
    };

    /// <summary>
    /// E.g. "not a checkpoint of a family rmnet knows: its first tensor is 'features.0.0.weight'; closest: MobileNetV2
    /// (torchvision), which starts so but whose blocks did not fit; the families start with 'conv1.weight' (...), ...".
    /// The same on every run: it names the file's first key in file order.
    /// </summary>
    public static string NotRecognised(StateDict sd)
    {
        string first = sd.Keys.First();
        // A family's names under a prefix that is no wrapper rmnet removes (mmpretrain's and detectors' 'backbone.',
        // an 'encoder.'): the file's first key ends as a family's first key does, and most tensors share the prefix (a
        // DenseNet's 'features.denseblock1.denselayer1.conv1.weight' ends so too, but its prefix holds a dozen of hundreds).
        // Not where it is a family's first key itself: the DBB repository's ResNets' 'stage0.conv1.conv.weight' ends as
        // ACNet's ResNet's 'conv1.conv.weight'.
        var nested = Starts.Any(f => f.FirstKey == first) ? default
            : Starts.Where(f => first.Length > f.FirstKey.Length && first.EndsWith("." + f.FirstKey, StringComparison.Ordinal))
                .OrderByDescending(f => f.FirstKey.Length).FirstOrDefault();
        string prefix = nested.FirstKey is null ? "" : first[..^nested.FirstKey.Length];
        int under = prefix.Length == 0 ? 0 : sd.Keys.Count(k => k.StartsWith(prefix, StringComparison.Ordinal));
        if (under * 2 >= sd.Count && under > 0)
        {
            return $"not a checkpoint of a family rmnet knows: its first tensor is '{first}' ({sd.Count} tensors); closest: {nested.Family}, whose names " +
                $"the {under} tensors under '{prefix}' have after that prefix; rmnet removes only the wrappers " +
                $"{string.Join(", ", IO.CheckpointReader.WrapperPrefixes)}: save the tensors under '{prefix}' as a state dict of their own, without the prefix " +
                $"(a classifier's head, if it is elsewhere, as 'fc' or the family's head name)";
        }
        var closest = Starts.Select(f => (f.Family, f.FirstKey, Shared: SharedPrefix(first, f.FirstKey))).OrderByDescending(f => f.Shared).First();
        string near = closest.Shared == closest.FirstKey.Length
            ? $"closest: {closest.Family}, which starts so but whose other names did not fit"
            : closest.Shared > 0 ? $"closest: {closest.Family} ('{closest.FirstKey}')" : "no family starts like it";
        return $"not a checkpoint of a family rmnet knows: its first tensor is '{first}' ({sd.Count} tensors); {near}; the families start with "
            + string.Join(", ", Starts.Select(f => $"'{f.FirstKey}' ({f.Family})"));
    }

    /// <summary>Characters the two names share from the start, counted in whole dot-separated parts.</summary>
    static int SharedPrefix(string a, string b)
    {
        int n = 0, lastDot = 0;
        while (n < a.Length && n < b.Length && a[n] == b[n])
        {
            n++;
            if (n == a.Length || a[n - 1] == '.' ) lastDot = n;
        }
        return n == b.Length && n == a.Length ? n : lastDot;
    }
}
