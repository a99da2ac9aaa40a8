namespace RMNet;

/// <summary>Progress of a long operation: <paramref name="Done"/> of <paramref name="Total"/> steps of <paramref name="Stage"/>.</summary>
/// <param name="Stage">What is happening, e.g. "converting".</param>
/// <param name="Done">Steps finished.</param>
/// <param name="Total">Steps in all.</param>
public sealed record ProgressStep(string Stage, int Done, int Total);
