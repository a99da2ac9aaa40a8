namespace RMNet.Lowering;

/// <summary>
/// A reparameterisable conv + BN block that a network's builder can be switched to (the DBB repository's
/// <c>conv_bn</c> and <c>conv_bn_relu</c> make ACNet's ACBlock or DBB's DiverseBranchBlock, in its MobileNet and its
/// ResNet), named by the module that holds its main kernel in each form.
/// </summary>
/// <param name="Family">The family's name, e.g. "ACNet (ACBlock)".</param>
/// <param name="Kernel">The main kxk conv's weight in train form, relative to the block, e.g. "square_conv.weight".</param>
/// <param name="DeployKernel">The fused conv's weight in deploy form, e.g. "fused_conv.weight".</param>
/// <param name="LowerBlock">
/// Writes block p on x (stride, groups, BN epsilon) without its nonlinearity, the sum of its branches or its fused conv;
/// returns the output.
/// </param>
internal sealed record ReparamBlockKind(string Family, string Kernel, string DeployKernel, Func<GraphBuilder, StateDict, string, string, int, int, double, string> LowerBlock)
{
    /// <summary>True where block <paramref name="p"/> is of this kind, in either form.</summary>
    public bool IsAt(StateDict sd, string p) => sd.ContainsKey($"{p}.{Kernel}") || Deployed(sd, p);

    /// <summary>True where block <paramref name="p"/> is in deploy form.</summary>
    public bool Deployed(StateDict sd, string p) => sd.ContainsKey($"{p}.{DeployKernel}");

    /// <summary>Block <paramref name="p"/>'s main kernel, [out, in/groups, k, k].</summary>
    public TorchSharp.torch.Tensor MainKernel(StateDict sd, string p) => sd.Require(Deployed(sd, p) ? $"{p}.{DeployKernel}" : $"{p}.{Kernel}");
}
