namespace RMNet.Plain;

/// <summary>Begin/end padding of a 2-D window op, in ONNX order [top, left, bottom, right].</summary>
public readonly record struct Padding2d(int Top, int Left, int Bottom, int Right)
{
    /// <summary>The same padding on every side.</summary>
    public static Padding2d All(int p) => new(p, p, p, p);

    /// <summary>True where begin and end pads agree on both axes.</summary>
    public bool IsSymmetric => Top == Bottom && Left == Right;

    /// <summary>[top, left, bottom, right], the ONNX <c>pads</c> attribute.</summary>
    internal long[] ToOnnx() => new long[] { Top, Left, Bottom, Right };

    /// <summary>[left, right, top, bottom], the order of <c>torch.nn.functional.pad</c> for the last two dims.</summary>
    internal long[] ToTorchPad() => new long[] { Left, Right, Top, Bottom };

    /// <inheritdoc />
    public override string ToString() => IsSymmetric && Top == Left ? Top.ToString() : $"[{Top},{Left},{Bottom},{Right}]";
}
