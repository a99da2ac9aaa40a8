namespace RMNet.Lowering;

/// <summary>A network's blocks per stage, read from which names a state dict has (every lowering's layout comes from its names).</summary>
internal static class StageDepths
{
    /// <summary>
    /// Blocks per stage: stages <paramref name="first"/>, <paramref name="first"/> + 1, ... while block 0 exists, and in
    /// each the blocks 0, 1, ... while <paramref name="has"/>(stage, block) is true.
    /// </summary>
    public static List<int> Count(Func<int, int, bool> has, int first = 0)
    {
        var depths = new List<int>();
        for (int stage = first; has(stage, 0); stage++)
        {
            int blocks = 0;
            while (has(stage, blocks)) blocks++;
            depths.Add(blocks);
        }
        return depths;
    }
}
