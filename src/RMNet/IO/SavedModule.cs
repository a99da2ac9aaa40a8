namespace RMNet.IO;

/// <summary>
/// One module of a whole <c>torch.save(model)</c> checkpoint as its pickle describes it: the class name (e.g.
/// <c>BatchNorm2d</c>, <c>QARepVGGBlockV2</c>, without the Python module it lives in) and its plain attributes
/// (numbers, booleans, strings; tuples of integers as <c>long[]</c>). A state dict has none of this.
/// </summary>
/// <param name="Class">The class name.</param>
/// <param name="Attributes">The module's plain attributes by name (e.g. <c>eps</c>, <c>kernel_size</c>).</param>
internal sealed record SavedModule(string Class, IReadOnlyDictionary<string, object> Attributes)
{
    /// <summary>An integer attribute, or a tuple of equal integers (PyTorch stores <c>kernel_size=3</c> as 3 or (3, 3)); else null.</summary>
    public long? Integer(string name) => Attributes.GetValueOrDefault(name) switch
    {
        long v => v,
        long[] { Length: > 0 } t when t.All(v => v == t[0]) => t[0],
        _ => null,
    };
}
