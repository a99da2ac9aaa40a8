using Onnx;
using RMNet.Plain;
using TorchSharp;
using static TorchSharp.torch;

namespace RMNet.Onnx;

/// <summary>
/// Border writes after a zero Pad moved into the 1x1 conv before it. DBB's BNAndPad pads a BN's output with the value
/// the BN gives a zero input (<c>F.pad</c>, then <c>out[:, :, 0:p, :] = v</c> for each border), which PyTorch exports as
/// Pad then one ScatterND a border (their indices and updates made constant by <see cref="ShapeConstants"/>). Where the
/// value written is what the 1x1 conv (+BN) before the Pad gives at a zero input (its bias b, or the BN of b), padding
/// the conv's input with zeros instead gives the same tensor: a 1x1 conv of stride 1 maps each zero pixel to b.
/// Conditions: the Pad pads H and W only, with zeros; each ScatterND (no reduction) reads the previous one's output,
/// which nothing else reads, and has constant indices and updates; the Pad reads the output of a 1x1 conv of stride 1
/// (with a foldable BN or not) with constant weights, read by nothing else; the graph fixes the input's shape (the
/// batch is the input's); together the writes cover exactly the positions outside the conv's output, each with its
/// channel's zero-input value (within 1e-5 of the largest). Otherwise the graph is left as it is.
/// <code>
///   x --Conv1x1(W, b)[+BN]--Pad(p, 0)--ScatterND(top, v)--...--ScatterND(right, v)--> y     (v = value at x = 0)
///   becomes
///   x --Conv1x1(W, b, pads p)[+BN]--> y
/// </code>
/// </summary>
internal static class BorderWrites
{
    /// <summary>Rewrites <paramref name="model"/> in place; returns how many padded borders were moved into their conv.</summary>
    public static int Run(ModelProto model, string file) => GraphRewrite.Round(model, file, (g, e) =>
    {
        var units = ConvNodes.Read(g);
        var sizes = StaticShapes.Spatial(g);
        long batch = Batch(g);
        int moved = 0;
        foreach (var pad in g.Order.Where(n => n.OpType == "Pad"))
        {
            if (ConvNodes.ZeroPad(g, pad.Output[0]) is not { } zp || zp.Pads == Padding2d.All(0)) continue;
            // The ScatterND chain on the padded value.
            var writes = new List<NodeProto>();
            string last = pad.Output[0];
            while (g.HasSingleUse(last) && g.ConsumersOf(last)[0] is { OpType: "ScatterND" } s && s.Input[0] == last
                   && s.Attribute.All(a => a.Name != "reduction" || a.S.ToStringUtf8() == "none")
                   && g.Initializers.ContainsKey(s.Input[1]) && g.Initializers.ContainsKey(s.Input[2]))
            {
                writes.Add(s);
                last = s.Output[0];
            }
            if (writes.Count == 0 || g.Graph.Output.Any(o => o.Name == last)) continue;
            string x = pad.Input[0];
            if (!units.TryGetValue(x, out var unit) || unit.Problem is not null || !g.HasSingleUse(x) || e.Removed.Contains(unit.Conv)) continue;
            if (unit.WeightDims[2] != 1 || unit.WeightDims[3] != 1 || unit.Geometry.Stride != 1 || batch <= 0) continue;
            if (!sizes.TryGetValue(x, out var hw)) continue;
            var zero = unit.Fused.Weights.BiasOrZeros();
            if (!WritesBorder(g, writes, zero, batch, hw.H, hw.W, zp.Pads)) continue;

            // The conv pads its input by the Pad's amounts as well; the writes' readers read the conv's (or BN's) output.
            var conv = unit.Conv.Clone();
            var own = unit.Conv.Attribute.FirstOrDefault(a => a.Name == "pads")?.Ints.ToArray() ?? new long[4];
            if (unit.Conv.AutoPad() is not ("NOTSET" or "") || own.Length != 4) continue;
            var pads = zp.Pads.ToOnnx().Zip(own, (a, b) => a + b).ToArray();
            conv.Attribute.Remove(conv.Attribute.FirstOrDefault(a => a.Name == "pads"));
            conv.Attribute.Add(OnnxNodes.Ints("pads", pads));
            e.Replacements[unit.Conv] = new List<NodeProto> { conv };
            foreach (var reader in g.ConsumersOf(last))
                for (int i = 0; i < reader.Input.Count; i++)
                    if (reader.Input[i] == last) reader.Input[i] = x;
            e.Removed.Add(pad);
            foreach (var w in writes) e.Removed.Add(w);
            moved++;
        }
        return moved;
    });

    /// <summary>The fixed batch of the graph's one 4-D input, or 0 where there is none.</summary>
    static long Batch(OnnxGraph g)
    {
        var inputs = g.Graph.Input.Where(i => !g.Initializers.ContainsKey(i.Name)).ToList();
        return inputs is [{ Type.TensorType.Shape.Dim: { Count: 4 } dims }] && dims[0].DimValue > 0 ? dims[0].DimValue : 0;
    }

    /// <summary>
    /// True where the writes, applied in order to an [N, C, H + pads, W + pads] tensor, set exactly the positions outside
    /// [top, top + H) x [left, left + W), each to its channel's <paramref name="zero"/> value.
    /// </summary>
    static bool WritesBorder(OnnxGraph g, List<NodeProto> writes, Tensor zero, long batch, long h, long w, Padding2d pads)
    {
        long c = zero.shape[0], ph = h + pads.Top + pads.Bottom, pw = w + pads.Left + pads.Right;
        var shape = new[] { batch, c, ph, pw };
        var canvas = full(shape, double.NaN, dtype: ScalarType.Float64);
        foreach (var s in writes)
        {
            var idx = OnnxTensors.ToTensor(g.Initializers[s.Input[1]], g.File, ScalarType.Int64);
            var upd = OnnxTensors.ToTensor(g.Initializers[s.Input[2]], g.File);
            if (idx.dim() < 1 || idx.shape[^1] != 4 || upd.numel() != idx.numel() / 4) return false;
            idx = idx.reshape(-1, 4);
            // Out-of-range indices: the original would fail, this is not a border write.
            for (int d = 0; d < 4; d++)
                if (idx.shape[0] > 0 && (idx.select(1, d).min().item<long>() < 0 || idx.select(1, d).max().item<long>() >= shape[d])) return false;
            canvas.index_put_(upd.reshape(-1), idx.select(1, 0), idx.select(1, 1), idx.select(1, 2), idx.select(1, 3));
        }
        var expected = zero.to_type(ScalarType.Float64).reshape(1, c, 1, 1).expand(shape).clone();
        expected[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(pads.Top, pads.Top + h), TensorIndex.Slice(pads.Left, pads.Left + w)] = double.NaN;
        var border = expected.isnan().logical_not();
        // Unwritten exactly inside, written everywhere outside.
        if (!canvas.isnan().eq(expected.isnan()).all().item<bool>()) return false;
        double scale = Math.Max(zero.abs().max().item<double>(), 1e-12);
        return border.any().item<bool>() && (canvas.masked_select(border) - expected.masked_select(border)).abs().max().item<double>() <= 1e-5 * scale;
    }
}
