namespace RMNet.Pruning;

/// <summary>The channels a pruning keeps, and what they cost.</summary>
/// <param name="Keep">Per prunable layer, per channel: true where the channel stays.</param>
/// <param name="MacsBefore">MACs with every channel.</param>
/// <param name="MacsAfter">MACs with the kept channels.</param>
/// <param name="Threshold">The largest importance removed (0 where nothing was).</param>
internal sealed record ChannelPlan(IReadOnlyList<bool[]> Keep, long MacsBefore, long MacsAfter, double Threshold)
{
    /// <summary>Channels kept per layer.</summary>
    public IReadOnlyList<int> Counts => Keep.Select(k => k.Count(x => x)).ToList();
}

/// <summary>
/// Global channel pruning (network slimming): channels of every prunable layer are ranked together by importance
/// (the magnitude of their scale after L1 sparsity training, or their Taylor saliency) and the least important are removed, one by one, until
/// the network's MACs reach the target. Each layer keeps a minimum, so no path is cut.
/// </summary>
internal static class ChannelSelection
{
    /// <summary>The plan that meets <paramref name="targetMacs"/>; <see cref="RmException"/> where the minimums forbid it.</summary>
    /// <param name="importance">Per layer, per channel importance (larger stays longer; channels of exactly 0 count as already removed and go whatever the target).</param>
    /// <param name="cost">MACs as a function of the kept counts.</param>
    /// <param name="targetMacs">MACs to reach or go below.</param>
    /// <param name="minKeepFraction">Each layer keeps at least this fraction of its channels (and at least one).</param>
    /// <param name="channelMultiple">Kept counts are multiples of this (where the layer's width is): runtimes' conv kernels work in blocks of 4, 8 or 16 channels.</param>
    public static ChannelPlan Select(IReadOnlyList<float[]> importance, ChannelCostModel cost, long targetMacs, double minKeepFraction = 1.0 / 16, int channelMultiple = 1)
    {
        var removal = new Removal(importance, cost, minKeepFraction, channelMultiple);
        long before = cost.Macs(importance.Select(i => i.Length).ToList()), macs = cost.Macs(removal.Counts);
        double threshold = 0;
        // Ascending importance; ties broken by layer then channel so the plan is deterministic.
        var order = importance.SelectMany((imp, l) => imp.Select((v, c) => (Value: Math.Abs(v), Layer: l, Channel: c)))
            .OrderBy(x => x.Value).ThenBy(x => x.Layer).ThenBy(x => x.Channel);
        foreach (var (value, layer, channel) in order)
        {
            if (macs <= targetMacs) break;
            if (!removal.Keep[layer][channel] || !removal.CanRemove(layer)) continue;   // already taken with a block of its layer, or at its minimum
            removal.Remove(layer);
            macs = cost.Macs(removal.Counts);
            threshold = value;
        }
        if (macs > targetMacs) throw Unreachable(targetMacs, macs, minKeepFraction, channelMultiple);
        return new ChannelPlan(removal.Keep, before, macs, threshold);
    }

    /// <summary>
    /// The plan that meets <paramref name="targetMacs"/> removing, step by step, the block of channels with the least
    /// importance per MAC it saves: for an additive importance (a Taylor estimate of the loss change) this is the
    /// greedy answer to "lose the least while meeting the budget", and it spends the budget on cheap channels (late,
    /// small feature maps) before costly ones (early, large feature maps). A block is the next
    /// <paramref name="channelMultiple"/> least important channels of a layer, its importance their sum.
    /// </summary>
    /// <param name="importance">Per layer, per channel importance, non-negative and additive (0: already removed).</param>
    /// <param name="cost">MACs as a function of the kept counts.</param>
    /// <param name="targetMacs">MACs to reach or go below.</param>
    /// <param name="minKeepFraction">Each layer keeps at least this fraction of its channels (and at least one).</param>
    /// <param name="channelMultiple">Kept counts are multiples of this (where the layer's width is).</param>
    public static ChannelPlan SelectPerMac(IReadOnlyList<float[]> importance, ChannelCostModel cost, long targetMacs, double minKeepFraction = 1.0 / 16, int channelMultiple = 1)
    {
        var removal = new Removal(importance, cost, minKeepFraction, channelMultiple);
        long before = cost.Macs(importance.Select(i => i.Length).ToList()), macs = cost.Macs(removal.Counts);
        double threshold = 0;
        while (macs > targetMacs)
        {
            int best = -1;
            double bestRatio = double.PositiveInfinity;
            for (int l = 0; l < removal.Counts.Length; l++)
            {
                if (!removal.CanRemove(l)) continue;
                double sum = removal.NextBlock(l).Sum(c => Math.Abs(importance[l][c]));
                long saving = removal.NextStep(l) * cost.SavingOfOne(l, removal.Counts);
                // A layer whose removal saves nothing (no MACs depend on it) is never worth losing importance for.
                double ratio = saving > 0 ? sum / saving : sum == 0 ? 0 : double.PositiveInfinity;
                if (ratio < bestRatio) (best, bestRatio) = (l, ratio);
            }
            if (best < 0 || double.IsPositiveInfinity(bestRatio)) break;
            removal.Remove(best);
            macs = cost.Macs(removal.Counts);
            threshold = bestRatio;
        }
        if (macs > targetMacs) throw Unreachable(targetMacs, macs, minKeepFraction, channelMultiple);
        return new ChannelPlan(removal.Keep, before, macs, threshold);
    }

    /// <summary>The plan that keeps exactly the channels of non-zero importance (a pruning already made, e.g. by masking).</summary>
    public static ChannelPlan Nonzero(IReadOnlyList<float[]> importance, ChannelCostModel cost)
    {
        var keep = importance.Select(imp => imp.Select(v => v != 0).ToArray()).ToList();
        return new ChannelPlan(keep, cost.Macs(importance.Select(i => i.Length).ToList()), cost.Macs(keep.Select(k => k.Count(x => x)).ToList()), 0);
    }

    /// <summary>
    /// Throws <see cref="RmException"/> where no plan can reach <paramref name="targetMacs"/> (every layer at its
    /// smallest allowed count still costs more), so a run can stop before training rather than after it.
    /// </summary>
    public static void CheckReachable(IReadOnlyList<int> widths, ChannelCostModel cost, long targetMacs, double minKeepFraction = 1.0 / 16, int channelMultiple = 1)
    {
        var smallest = widths.Select(n =>
        {
            int minimum = MinimumCount(n, minKeepFraction, channelMultiple), count = n;
            while (count - Step(count, channelMultiple) >= minimum) count -= Step(count, channelMultiple);
            return count;
        }).ToList();
        long macs = cost.Macs(smallest);
        if (macs > targetMacs) throw Unreachable(targetMacs, macs, minKeepFraction, channelMultiple);
    }

    /// <summary>
    /// A plan being made: which channels are kept and how many per layer. Removals come in blocks (down to the next
    /// multiple of the channel multiple), each taking the layer's least important channels still kept.
    /// </summary>
    sealed class Removal
    {
        readonly int[] _minimum, _removed;
        readonly int[][] _byLayer;
        readonly int _multiple;

        public Removal(IReadOnlyList<float[]> importance, ChannelCostModel cost, double minKeepFraction, int multiple)
        {
            if (multiple < 1) throw new ArgumentOutOfRangeException(nameof(multiple));
            if (importance.Count != cost.LayerCount)
                throw new ArgumentException($"{importance.Count} importance lists for {cost.LayerCount} layers");
            _multiple = multiple;
            Keep = importance.Select(i => Enumerable.Repeat(true, i.Length).ToArray()).ToArray();
            Counts = importance.Select(i => i.Length).ToArray();
            _minimum = Counts.Select(n => MinimumCount(n, minKeepFraction, multiple)).ToArray();
            _byLayer = importance.Select(imp => Enumerable.Range(0, imp.Length).OrderBy(c => Math.Abs(imp[c])).ThenBy(c => c).ToArray()).ToArray();
            _removed = new int[importance.Count];
            // Channels of zero importance are already gone (removed by an earlier round, or a scale of exactly 0):
            // they leave whatever the target, so a plan never brings back what an earlier one removed.
            for (int l = 0; l < Counts.Length; l++)
                while (CanRemove(l) && NextBlock(l).All(c => importance[l][c] == 0)) Remove(l);
        }

        public bool[][] Keep { get; }
        public int[] Counts { get; }
        public int NextStep(int layer) => Step(Counts[layer], _multiple);
        public bool CanRemove(int layer) => Counts[layer] - NextStep(layer) >= _minimum[layer];
        public IEnumerable<int> NextBlock(int layer) => _byLayer[layer].Skip(_removed[layer]).Take(NextStep(layer));

        public void Remove(int layer)
        {
            int step = NextStep(layer);
            for (int i = 0; i < step; i++) Keep[layer][_byLayer[layer][_removed[layer]++]] = false;
            Counts[layer] -= step;
        }
    }

    /// <summary>The fewest channels a layer of <paramref name="count"/> may keep: the fraction, at least one block.</summary>
    static int MinimumCount(int count, double minKeepFraction, int multiple) =>
        Math.Max(Math.Min(count, multiple), (int)Math.Ceiling(count * minKeepFraction));

    /// <summary>Channels one removal takes from a layer of <paramref name="count"/>: down to the next lower multiple.</summary>
    static int Step(int count, int multiple) => count % multiple == 0 ? multiple : count % multiple;

    static RmException Unreachable(long target, long macs, double minKeepFraction, int multiple) =>
        new($"the target of {target:N0} MACs cannot be reached: keeping at least {minKeepFraction:P1} of every layer's channels"
            + $"{(multiple > 1 ? $" in multiples of {multiple}" : "")} costs {macs:N0} (lower --channel-multiple or raise --target-flops)");
}
