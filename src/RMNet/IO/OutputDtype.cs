using static TorchSharp.torch;

namespace RMNet.IO;

/// <summary>
/// The element type of a written plain model's weights. Conversion math is float64 whatever is chosen; the
/// weights are rounded once, when written.
/// </summary>
public enum OutputDtype
{
    /// <summary>float32 weights (the default).</summary>
    Float32,
    /// <summary>
    /// float16 weights: half the file. ONNX keeps a float32 input and output (Cast nodes at both ends); safetensors
    /// and .pth hold float16 tensors.
    /// </summary>
    Float16,
}

/// <summary>Conversions of <see cref="OutputDtype"/>.</summary>
internal static class OutputDtypes
{
    /// <summary>The TorchSharp scalar type of <paramref name="dtype"/>.</summary>
    public static ScalarType ScalarType(this OutputDtype dtype) => dtype == OutputDtype.Float16 ? TorchSharp.torch.ScalarType.Float16 : TorchSharp.torch.ScalarType.Float32;

    /// <summary>
    /// The relative error (max |converted - original| / max |original| per image) a model written in
    /// <paramref name="dtype"/> is held to by default: float16 rounds every weight by up to 2^-11 (4.9e-4), and a
    /// deep network adds those up.
    /// </summary>
    public static double DefaultTolerance(this OutputDtype dtype) => dtype == OutputDtype.Float16 ? 1e-2 : 1e-4;
}
