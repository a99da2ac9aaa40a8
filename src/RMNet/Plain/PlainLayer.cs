using static TorchSharp.torch;

namespace RMNet.Plain;

/// <summary>One layer of a plain (single-branch) network.</summary>
internal abstract record PlainLayer
{
    /// <summary>Short type name used in saved architectures and reports.</summary>
    public abstract string Kind { get; }

    /// <summary>Output shape [C, H, W] for an input of shape [C, H, W].</summary>
    public abstract (long C, long H, long W) OutputShape((long C, long H, long W) input);

    /// <summary>Multiply-accumulate count for one image with the given input shape.</summary>
    public virtual long MultiplyAccumulates((long C, long H, long W) input) => 0;

    /// <summary>Number of weights and biases.</summary>
    public virtual long ParameterCount => 0;

    /// <summary>
    /// Moves the weight tensors of <paramref name="layers"/> out of the current dispose scope, so a transform can run
    /// in its own scope, free its intermediates and keep only the layers it made.
    /// </summary>
    public static IReadOnlyList<PlainLayer> MoveToOuterDisposeScope(IReadOnlyList<PlainLayer> layers)
    {
        foreach (var t in layers.SelectMany(TensorsOf)) t.MoveToOuterDisposeScope();
        return layers;
    }

    /// <summary>The tensors <paramref name="layer"/> holds (weights, biases, slopes, bounds).</summary>
    internal static IEnumerable<Tensor> TensorsOf(PlainLayer layer) => layer switch
    {
        ConvLayer c => new[] { c.Weight, c.Bias },
        LinearLayer l => new[] { l.Weight, l.Bias },
        SeLayer s => new[] { s.Fc1Weight, s.Fc1Bias, s.Fc2Weight, s.Fc2Bias },
        PReluLayer p => new[] { p.Slope },
        ClampLayer c => new[] { c.Lower, c.Upper },
        _ => Array.Empty<Tensor>(),
    };

    /// <summary>
    /// <paramref name="layer"/> with new references to the same tensors (no copy), outside any dispose scope:
    /// disposing either layer's tensors leaves the other's usable.
    /// </summary>
    internal static PlainLayer Alias(PlainLayer layer)
    {
        static Tensor A(Tensor t) => t.alias().DetachFromDisposeScope();
        return layer switch
        {
            ConvLayer c => c with { Weight = A(c.Weight), Bias = A(c.Bias) },
            LinearLayer l => l with { Weight = A(l.Weight), Bias = A(l.Bias) },
            SeLayer s => s with { Fc1Weight = A(s.Fc1Weight), Fc1Bias = A(s.Fc1Bias), Fc2Weight = A(s.Fc2Weight), Fc2Bias = A(s.Fc2Bias) },
            PReluLayer p => p with { Slope = A(p.Slope) },
            ClampLayer c => c with { Lower = A(c.Lower), Upper = A(c.Upper) },
            _ => layer,
        };
    }

    /// <summary>Output length of a window op along one axis.</summary>
    protected static long WindowOutput(long size, int kernel, int stride, int padBegin, int padEnd)
        => (size + padBegin + padEnd - kernel) / stride + 1;
}

/// <summary>2-D convolution with bias. Weight [out, in/groups, kh, kw], float32.</summary>
internal sealed record ConvLayer(Tensor Weight, Tensor Bias, int StrideH, int StrideW, Padding2d Padding, int Groups) : PlainLayer
{
    /// <inheritdoc />
    public override string Kind => "conv";
    /// <summary>Output channels.</summary>
    public long OutChannels => Weight.shape[0];
    /// <summary>Input channels.</summary>
    public long InChannels => Weight.shape[1] * Groups;
    /// <summary>Kernel height.</summary>
    public int KernelH => (int)Weight.shape[2];
    /// <summary>Kernel width.</summary>
    public int KernelW => (int)Weight.shape[3];

    /// <inheritdoc />
    public override (long C, long H, long W) OutputShape((long C, long H, long W) input)
    {
        if (input.C != InChannels)
            throw new InvalidOperationException($"conv expects {InChannels} input channels, got {input.C}");
        return (OutChannels, WindowOutput(input.H, KernelH, StrideH, Padding.Top, Padding.Bottom),
            WindowOutput(input.W, KernelW, StrideW, Padding.Left, Padding.Right));
    }

    /// <inheritdoc />
    public override long MultiplyAccumulates((long C, long H, long W) input)
    {
        var o = OutputShape(input);
        return o.C * o.H * o.W * Weight.shape[1] * KernelH * KernelW;
    }

    /// <inheritdoc />
    public override long ParameterCount => Weight.numel() + Bias.numel();
}

/// <summary>Elementwise max(x, 0).</summary>
internal sealed record ReluLayer : PlainLayer
{
    /// <inheritdoc />
    public override string Kind => "relu";
    /// <inheritdoc />
    public override (long C, long H, long W) OutputShape((long C, long H, long W) input) => input;
}

/// <summary>
/// Per-channel PReLU: y = x where x &gt;= 0, slope[c] * x elsewhere. With slopes 1 and 0 it is the identity on
/// some channels and ReLU on the others: how RM carries a possibly negative input through an activation.
/// </summary>
internal sealed record PReluLayer(Tensor Slope) : PlainLayer
{
    /// <inheritdoc />
    public override string Kind => "prelu";
    /// <inheritdoc />
    public override (long C, long H, long W) OutputShape((long C, long H, long W) input)
    {
        if (input.C != Slope.shape[0])
            throw new InvalidOperationException($"prelu has {Slope.shape[0]} slopes for {input.C} channels");
        return input;
    }
    /// <inheritdoc />
    public override long ParameterCount => Slope.numel();
}

/// <summary>
/// Per-channel clamp: y = min(max(x, lower[c]), upper[c]). ReLU6 is [0, 6]; a carried channel is
/// (-inf, inf), so the reserved copy of a MobileNetV2 block input passes unclipped (docs/design.md section 7).
/// </summary>
internal sealed record ClampLayer(Tensor Lower, Tensor Upper) : PlainLayer
{
    /// <inheritdoc />
    public override string Kind => "clamp";
    /// <inheritdoc />
    public override (long C, long H, long W) OutputShape((long C, long H, long W) input)
    {
        if (input.C != Lower.shape[0])
            throw new InvalidOperationException($"clamp has {Lower.shape[0]} bounds for {input.C} channels");
        return input;
    }
}

/// <summary>
/// Squeeze-and-excitation on a channel range: channels [Offset, Offset + Count) are multiplied by
/// sigmoid(fc2(relu(fc1(mean over H, W)))); the channels before Offset (the reserved block input) pass unchanged.
/// The one layer of a plain network that keeps a (gating) branch.
/// </summary>
internal sealed record SeLayer(long Offset, long Count, Tensor Fc1Weight, Tensor Fc1Bias, Tensor Fc2Weight, Tensor Fc2Bias) : PlainLayer
{
    /// <inheritdoc />
    public override string Kind => "se";
    /// <inheritdoc />
    public override (long C, long H, long W) OutputShape((long C, long H, long W) input)
    {
        if (input.C != Offset + Count)
            throw new InvalidOperationException($"se expects {Offset + Count} channels, got {input.C}");
        return input;
    }
    /// <inheritdoc />
    public override long MultiplyAccumulates((long C, long H, long W) input) => Fc1Weight.numel() + Fc2Weight.numel() + Count * input.H * input.W;
    /// <inheritdoc />
    public override long ParameterCount => Fc1Weight.numel() + Fc1Bias.numel() + Fc2Weight.numel() + Fc2Bias.numel();
}

/// <summary>Max pooling with a square window (padding counts as minus infinity).</summary>
internal sealed record MaxPoolLayer(int Kernel, int Stride, Padding2d Padding) : PlainLayer
{
    /// <inheritdoc />
    public override string Kind => "maxpool";
    /// <inheritdoc />
    public override (long C, long H, long W) OutputShape((long C, long H, long W) input)
        => (input.C, WindowOutput(input.H, Kernel, Stride, Padding.Top, Padding.Bottom),
            WindowOutput(input.W, Kernel, Stride, Padding.Left, Padding.Right));
}

/// <summary>Mean over the spatial axes, keeping them as 1x1.</summary>
internal sealed record GlobalAvgPoolLayer : PlainLayer
{
    /// <inheritdoc />
    public override string Kind => "gap";
    /// <inheritdoc />
    public override (long C, long H, long W) OutputShape((long C, long H, long W) input) => (input.C, 1, 1);
}

/// <summary>Flattens [N, C, 1, 1] into [N, C].</summary>
internal sealed record FlattenLayer : PlainLayer
{
    /// <inheritdoc />
    public override string Kind => "flatten";
    /// <inheritdoc />
    public override (long C, long H, long W) OutputShape((long C, long H, long W) input) => (input.C * input.H * input.W, 1, 1);
}

/// <summary>Fully connected layer y = x W^T + b. Weight [out, in].</summary>
internal sealed record LinearLayer(Tensor Weight, Tensor Bias) : PlainLayer
{
    /// <inheritdoc />
    public override string Kind => "linear";
    /// <inheritdoc />
    public override (long C, long H, long W) OutputShape((long C, long H, long W) input)
    {
        if (input.C * input.H * input.W != Weight.shape[1])
            throw new InvalidOperationException($"linear expects {Weight.shape[1]} inputs, got {input.C * input.H * input.W}");
        return (Weight.shape[0], 1, 1);
    }
    /// <inheritdoc />
    public override long MultiplyAccumulates((long C, long H, long W) input) => Weight.numel();
    /// <inheritdoc />
    public override long ParameterCount => Weight.numel() + Bias.numel();
}
