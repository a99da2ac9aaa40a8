namespace RMNet.Rm;

/// <summary>How a block input that may be negative is carried through the activations (docs/design.md section 7).</summary>
public enum NegativeInputMode
{
    /// <summary>Per-channel activation: PReLU with slope 1 on the carried channels, 0 (ReLU) on the others.</summary>
    PRelu,
    /// <summary>Sign split: carry relu(x) and relu(-x), merge with +I and -I; plain ReLU only, twice the carried channels.</summary>
    Split,
}
