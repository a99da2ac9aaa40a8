namespace RMNet.Pruning;

/// <summary>The channels a pruning keeps, and what they cost.</summary>
/// <param name="Keep">Per prunable layer, per channel: true where the channel stays.</param>
/// <param name="MacsBefore">MACs with every channel.</param>
/// <param name="MacsAfter">MACs with the kept channels.</param>
/// <param name="Threshold">The largest importance removed (0 where nothing was).</param>
public sealed record ChannelPlan(IReadOnlyList<bool[]> Keep, long MacsBefore, long MacsAfter, double Threshold)
{
    /// <summary>Channels kept per layer.</summary>
    public IReadOnlyList<int> Counts => Keep.Select(k => k.Count(x => x)).ToList();
}

/// <summary>
/// Global channel pruning (network slimming): channels of every prunable layer are ranked together by importance
/// (the magnitude of their scale after L1 sparsity training, or their Taylor saliency) and the least important are removed, one by one, until
/// the network's MACs reach the target. Each layer keeps a minimum, so no path is cut.
/// </summary>
public static class ChannelSelection
{
    /// <summary>The plan that meets <paramref name="targetMacs"/>; <see cref="RmException"/> where the minimums forbid it.</summary>
    /// <param name="importance">Per layer, per channel importance (larger stays longer).</param>
    /// <param name="cost">MACs as a function of the kept counts.</param>
    /// <param name="targetMacs">MACs to reach or go below.</param>
    /// <param name="minKeepFraction">Each layer keeps at least this fraction of its channels (and at least one).</param>
    /// <param name="channelMultiple">Kept counts are multiples of this (where the layer's width is): runtimes' conv kernels work in blocks of 4, 8 or 16 channels.</param>
    public static ChannelPlan Select(IReadOnlyList<float[]> importance, ChannelCostModel cost, long targetMacs, double minKeepFraction = 1.0 / 16, int channelMultiple = 1)
    {
        if (channelMultiple < 1) throw new ArgumentOutOfRangeException(nameof(channelMultiple));
        if (importance.Count != cost.LayerCount)
            throw new ArgumentException($"{importance.Count} importance lists for {cost.LayerCount} layers");
        var keep = importance.Select(i => Enumerable.Repeat(true, i.Length).ToArray()).ToArray();
        var counts = importance.Select(i => i.Length).ToArray();
        var minimum = counts.Select(n => MinimumCount(n, minKeepFraction, channelMultiple)).ToArray();
        // Each layer's channels, least important first: a removal takes the next ones of its layer.
        var byLayer = importance.Select(imp => Enumerable.Range(0, imp.Length).OrderBy(c => Math.Abs(imp[c])).ThenBy(c => c).ToArray()).ToArray();
        var removed = new int[importance.Count];
        long before = cost.Macs(counts), macs = before;
        double threshold = 0;
        // Ascending importance; ties broken by layer then channel so the plan is deterministic.
        var order = importance.SelectMany((imp, l) => imp.Select((v, c) => (Value: Math.Abs(v), Layer: l, Channel: c)))
            .OrderBy(x => x.Value).ThenBy(x => x.Layer).ThenBy(x => x.Channel);
        foreach (var (value, layer, channel) in order)
        {
            if (macs <= targetMacs) break;
            if (!keep[layer][channel]) continue;   // already taken with a block of its layer
            int step = Step(counts[layer], channelMultiple);
            if (counts[layer] - step < minimum[layer]) continue;
            for (int i = 0; i < step; i++)
            {
                macs -= cost.SavingOfOne(layer, counts);
                counts[layer]--;
                keep[layer][byLayer[layer][removed[layer]++]] = false;
            }
            threshold = value;
        }
        if (macs > targetMacs) throw Unreachable(targetMacs, macs, minKeepFraction, channelMultiple);
        return new ChannelPlan(keep, before, macs, threshold);
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
        if (channelMultiple < 1) throw new ArgumentOutOfRangeException(nameof(channelMultiple));
        if (importance.Count != cost.LayerCount)
            throw new ArgumentException($"{importance.Count} importance lists for {cost.LayerCount} layers");
        var keep = importance.Select(i => Enumerable.Repeat(true, i.Length).ToArray()).ToArray();
        var counts = importance.Select(i => i.Length).ToArray();
        var minimum = counts.Select(n => MinimumCount(n, minKeepFraction, channelMultiple)).ToArray();
        var byLayer = importance.Select(imp => Enumerable.Range(0, imp.Length).OrderBy(c => Math.Abs(imp[c])).ThenBy(c => c).ToArray()).ToArray();
        var removed = new int[importance.Count];
        long before = cost.Macs(counts), macs = before;
        double threshold = 0;
        while (macs > targetMacs)
        {
            int best = -1;
            double bestRatio = double.PositiveInfinity;
            long bestSaving = 0;
            for (int l = 0; l < counts.Length; l++)
            {
                int step = Step(counts[l], channelMultiple);
                if (counts[l] - step < minimum[l]) continue;
                double sum = 0;
                for (int i = 0; i < step; i++) sum += Math.Abs(importance[l][byLayer[l][removed[l] + i]]);
                var after = (int[])counts.Clone();
                after[l] -= step;
                long saving = macs - cost.Macs(after);
                // A layer whose removal saves nothing (no MACs depend on it) is never worth losing importance for.
                double ratio = saving > 0 ? sum / saving : sum == 0 ? 0 : double.PositiveInfinity;
                if (ratio < bestRatio) (best, bestRatio, bestSaving) = (l, ratio, saving);
            }
            if (best < 0 || double.IsPositiveInfinity(bestRatio)) break;
            int take = Step(counts[best], channelMultiple);
            for (int i = 0; i < take; i++) keep[best][byLayer[best][removed[best]++]] = false;
            counts[best] -= take;
            macs -= bestSaving;
            threshold = bestRatio;
        }
        if (macs > targetMacs) throw Unreachable(targetMacs, macs, minKeepFraction, channelMultiple);
        return new ChannelPlan(keep, before, macs, threshold);
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

    /// <summary>The fewest channels a layer of <paramref name="count"/> may keep: the fraction, at least one block.</summary>
    static int MinimumCount(int count, double minKeepFraction, int multiple) =>
        Math.Max(Math.Min(count, multiple), (int)Math.Ceiling(count * minKeepFraction));

    /// <summary>Channels one removal takes from a layer of <paramref name="count"/>: down to the next lower multiple.</summary>
    static int Step(int count, int multiple) => count % multiple == 0 ? multiple : count % multiple;

    static RmException Unreachable(long target, long macs, double minKeepFraction, int multiple) =>
        new($"the target of {target:N0} MACs cannot be reached: keeping at least {minKeepFraction:P1} of every layer's channels"
            + $"{(multiple > 1 ? $" in multiples of {multiple}" : "")} costs {macs:N0} (lower --channel-multiple or raise --target-flops)");
}
