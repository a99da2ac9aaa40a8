namespace RMNet.Pruning;

/// <summary>
/// Prunes while the network trains, by first-order Taylor saliency (Molchanov et al., "Importance Estimation for
/// Neural Network Pruning", CVPR 2019): a channel's importance is the loss change its removal would cause,
/// estimated per step as (scale x d loss / d scale)^2 and summed between pruning rounds. Unlike the magnitude of
/// L1-penalised scales it does not depend on how large a layer's scales are, which in the gated ResNet is free
/// wherever a BatchNorm follows (an L1 penalty shrinks such layers as a whole and, in residual form, shrinks each
/// block's input below its branch until every shortcut gate dies).
/// <para>Rounds come four times an epoch in all but the last epoch (which only trains); the MACs allowed fall from
/// the full network's to the target on a cubic schedule (Zhu and Gupta, 2017: large cuts first, small ones
/// late). Each round removes, by <see cref="ChannelSelection"/>, the least salient channels until the MACs reach
/// the round's allowance; removed channels stay at zero. Rounds fall inside epochs and the sums restart with each
/// epoch, so a run resumed at an epoch boundary prunes exactly as one that never stopped.</para>
/// </summary>
internal sealed class GradualTaylorPruning
{
    /// <summary>Pruning rounds per pruning epoch.</summary>
    public const int RoundsPerEpoch = 4;

    readonly IReadOnlyList<ChannelScales> _scales;
    readonly ChannelCostModel _cost;
    readonly long _fullMacs, _targetMacs;
    readonly double _minKeepFraction;
    readonly int _channelMultiple;
    readonly int _stepsPerEpoch, _pruningEpochs;
    readonly bool _perMac;
    readonly Action<string> _log;
    readonly double[][] _saliency;
    bool[][] _keep;
    int _step;

    /// <summary>A pruner for <paramref name="scales"/>, starting at epoch <paramref name="epochsDone"/> of the stage.</summary>
    /// <param name="scales">The channel scales of every prunable layer; channels whose scale is 0 count as already removed.</param>
    /// <param name="cost">MACs as a function of the kept counts.</param>
    /// <param name="targetMacs">MACs the last round reaches.</param>
    /// <param name="minKeepFraction">Each layer keeps at least this fraction of its channels.</param>
    /// <param name="channelMultiple">Kept counts are multiples of this.</param>
    /// <param name="stepsPerEpoch">Optimiser steps per epoch.</param>
    /// <param name="epochs">Epochs of the stage; rounds fall in all but the last (in the only one if there is one).</param>
    /// <param name="epochsDone">Epochs already trained (a resumed stage).</param>
    /// <param name="log">Receives one line per round.</param>
    /// <param name="perMac">Rank blocks of channels by saliency per MAC they save (<see cref="ChannelSelection.SelectPerMac"/>) rather than channels by saliency alone (<see cref="ChannelSelection.Select"/>).</param>
    public GradualTaylorPruning(IReadOnlyList<ChannelScales> scales, ChannelCostModel cost, long targetMacs, double minKeepFraction, int channelMultiple,
        int stepsPerEpoch, int epochs, int epochsDone, Action<string> log, bool perMac = false)
    {
        _perMac = perMac;
        _scales = scales;
        _cost = cost;
        _fullMacs = cost.Macs(scales.Select(s => s.Count).ToList());
        _targetMacs = targetMacs;
        _minKeepFraction = minKeepFraction;
        _channelMultiple = channelMultiple;
        _stepsPerEpoch = stepsPerEpoch;
        _pruningEpochs = Math.Max(1, epochs - 1);
        _log = log;
        _step = epochsDone * stepsPerEpoch;
        _saliency = scales.Select(s => new double[s.Count]).ToArray();
        _keep = scales.Select(s => s.Importance().Select(v => v != 0).ToArray()).ToArray();
    }

    /// <summary>Pruning rounds in the whole stage.</summary>
    public int Rounds => _pruningEpochs * RoundsPerEpoch;

    /// <summary>The MACs allowed after round <paramref name="round"/> (1-based) of <paramref name="rounds"/>: cubic from <paramref name="full"/> to <paramref name="target"/>.</summary>
    public static long Allowance(int round, int rounds, long full, long target)
    {
        double left = 1 - (double)round / rounds;
        return target + (long)Math.Round((full - target) * left * left * left);
    }

    /// <summary>Call after every optimiser step, while the gradients of that step are still there.</summary>
    public void AfterStep()
    {
        int epoch = _step / _stepsPerEpoch, inEpoch = _step % _stepsPerEpoch;
        if (inEpoch == 0) foreach (var s in _saliency) Array.Clear(s);
        for (int l = 0; l < _scales.Count; l++)
        {
            var step = _scales[l].Saliency();
            for (int c = 0; c < step.Length; c++) _saliency[l][c] += step[c];
        }
        _step++;
        if (epoch < _pruningEpochs)
        {
            // Round r of this epoch ends after step floor(r * stepsPerEpoch / RoundsPerEpoch); with fewer steps
            // than rounds, the latest round that ends here stands for those that share its step.
            for (int r = RoundsPerEpoch; r >= 1; r--)
                if (inEpoch + 1 == r * _stepsPerEpoch / RoundsPerEpoch)
                {
                    Prune(epoch * RoundsPerEpoch + r);
                    break;
                }
        }
        ChannelScales.Mask(_scales, _keep);
    }

    void Prune(int round)
    {
        long allowance = Allowance(round, Rounds, _fullMacs, _targetMacs);
        // Removed channels get importance 0, which the selection always removes whatever the allowance, so a round
        // only ever removes more; kept channels get at least epsilon so that none is taken for removed.
        var importance = _saliency.Select((s, l) => s.Select((v, c) => _keep[l][c] ? Math.Max((float)v, float.Epsilon) : 0f).ToArray()).ToList();
        var plan = _perMac
            ? ChannelSelection.SelectPerMac(importance, _cost, allowance, _minKeepFraction, _channelMultiple)
            : ChannelSelection.Select(importance, _cost, allowance, _minKeepFraction, _channelMultiple);
        _keep = plan.Keep.Select(k => k.ToArray()).ToArray();
        _log($"round {round}/{Rounds}: {plan.Counts.Sum():N0} channels, {plan.MacsAfter:N0} MACs (allowed {allowance:N0})");
        foreach (var s in _saliency) Array.Clear(s);
    }
}
