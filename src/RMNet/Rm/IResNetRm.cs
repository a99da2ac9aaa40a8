using RMNet.Models;
using RMNet.Plain;
using RMNet.Weights;
using static TorchSharp.torch;

namespace RMNet.Rm;

/// <summary>
/// RM for InsightFace's IResNet. Block: y = bn3(conv2(prelu(bn2(conv1(bn1(x)))))) + (downsample(x) or x), no
/// activation after the sum, so x can be negative.
/// <list type="bullet">
/// <item>bn1 comes before a zero-padded conv and cannot fold into it. A 1x1 entry conv emits [x carried ; bn1(x)]
///   (after the stem's PReLU, and after a block's last conv where folding it into that conv's rows would cost more,
///   <see cref="LinearConvMerge.Pays"/>: at every width, as it doubles the 3x3 conv's rows); where it pays, the
///   previous block's last conv emits those rows itself.</item>
/// <item>The carried x passes conv1 and conv2 as Dirac channels and the PReLU with slope 1 (or, under the sign
///   split, as relu(x) and relu(-x) with slope 0); bn2 and bn3 fold into conv1 and conv2.</item>
/// <item>The shortcut merges into conv2: +I (and -I), or the downsample conv with its BN at conv2's centre tap (and
///   its negative for relu(-x)).</item>
/// <item>Head: bn2 folds into the last block's conv; flatten; fc with the BatchNorm1d <c>features</c> folded in.</item>
/// </list>
/// float64 weight arithmetic, each plain kernel cast once.
/// </summary>
internal static class IResNetRm
{
    /// <summary>The plain network equivalent to the IResNet.</summary>
    public static PlainModel Transform(StateDict sd, IResNetSpec spec, NegativeInputMode negative, IProgress<ProgressStep>? progress = null, CancellationToken cancellationToken = default)
    {
        var layers = new List<PlainLayer>();
        var stem = CarryKernels.BnRows(F64(sd.Require("conv1.weight")), zeros(spec.StemWidth, dtype: ScalarType.Float64), CarryKernels.Bn(sd, "bn1"));
        layers.Add(CarryKernels.Layer(stem.W, stem.B, 1, Padding2d.All(1)));
        layers.Add(new PReluLayer(sd.Require("prelu.weight").to_type(ScalarType.Float32).clone()));
        (Tensor W, Tensor B, int Stride)? pending = null;
        bool split = negative == NegativeInputMode.Split;
        for (int i = 0; i < spec.Blocks.Count; i++)
        {
            // Each block's float64 working tensors go with its scope: left to the garbage collector they piled up
            // to about five times the plain model's size (IResNet-100: 4.2 GB for an 847 MB model).
            using var scope = NewDisposeScope();
            int firstLayer = layers.Count;
            var b = spec.Blocks[i];
            long c = b.InChannels, w = b.Planes, carried = split ? 2 * c : c;
            var bn1 = CarryKernels.Bn(sd, $"{b.Prefix}.bn1");

            // Entry rows: [x (; -x) ; bn1(x)], from the previous block's conv where that costs no more than the conv
            // as it is and a 1x1 entry conv after it (LinearConvMerge.Pays, as the ONNX path decides), else, and after
            // the stem's PReLU, a 1x1 conv of their own.
            bool merge = pending is { } q && LinearConvMerge.Pays(q.W.shape[0], q.W.shape[1], q.W.shape[2], q.W.shape[3], 1, carried + c);
            if (pending is { } alone && !merge) layers.Add(CarryKernels.Layer(alone.W, alone.B, alone.Stride, Padding2d.All(1)));
            var (prevW, prevB, prevStride, prevPad) = merge && pending is { } p
                ? (p.W, p.B, p.Stride, Padding2d.All(1))
                : (IdentityOneByOne(c), zeros(c, dtype: ScalarType.Float64), 1, Padding2d.All(0));
            var bnRows = CarryKernels.BnRows(prevW, prevB, bn1);
            var entryW = split ? cat(new[] { prevW, -prevW, bnRows.W }, 0) : cat(new[] { prevW, bnRows.W }, 0);
            var entryB = split ? cat(new[] { prevB, -prevB, bnRows.B }, 0) : cat(new[] { prevB, bnRows.B }, 0);
            layers.Add(CarryKernels.Layer(entryW, entryB, prevStride, prevPad));

            // conv1 (+bn2): the carried rows pass as Dirac channels; then PReLU, slope 1 (0 under the split) on them.
            var conv1 = CarryKernels.BnRows(F64(sd.Require($"{b.Prefix}.conv1.weight")), zeros(w, dtype: ScalarType.Float64), CarryKernels.Bn(sd, $"{b.Prefix}.bn2"));
            var w1 = zeros(new[] { carried + w, carried + c, 3, 3 }, dtype: ScalarType.Float64);
            CarryKernels.PutDirac(w1, 0, 0, carried, 1, 1, 1.0);
            w1[TensorIndex.Slice(carried), TensorIndex.Slice(carried)] = conv1.W;
            layers.Add(CarryKernels.Layer(w1, cat(new[] { zeros(carried, dtype: ScalarType.Float64), conv1.B }, 0), 1, Padding2d.All(1)));
            var slopes = sd.Require($"{b.Prefix}.prelu.weight").to_type(ScalarType.Float32);
            layers.Add(new PReluLayer(cat(new[] { split ? zeros(carried) : ones(carried), slopes }, 0)));

            // conv2 (+bn3), with the shortcut merged into the carried columns; stays pending for the next entry.
            var conv2 = CarryKernels.BnRows(F64(sd.Require($"{b.Prefix}.conv2.weight")), zeros(w, dtype: ScalarType.Float64), CarryKernels.Bn(sd, $"{b.Prefix}.bn3"));
            var w2 = zeros(new[] { w, carried + w, 3, 3 }, dtype: ScalarType.Float64);
            w2[TensorIndex.Colon, TensorIndex.Slice(carried)] = conv2.W;
            var bias = conv2.B;
            if (b.HasProjection)
            {
                var ds = CarryKernels.BnRows(F64(sd.Require($"{b.Prefix}.downsample.0.weight")), zeros(w, dtype: ScalarType.Float64), CarryKernels.Bn(sd, $"{b.Prefix}.downsample.1"));
                var dsKernel = Kernels.PadOneByOne(ds.W, 3, 3, 1, 1);
                w2[TensorIndex.Colon, TensorIndex.Slice(0, c)] += dsKernel;
                if (split) w2[TensorIndex.Colon, TensorIndex.Slice(c, 2 * c)] -= dsKernel;
                bias = bias + ds.B;
            }
            else
            {
                CarryKernels.PutDirac(w2, 0, 0, c, 1, 1, 1.0);
                if (split) CarryKernels.PutDirac(w2, 0, c, c, 1, 1, -1.0);
            }
            PlainLayer.MoveToOuterDisposeScope(layers.GetRange(firstLayer, layers.Count - firstLayer));
            if (pending is { } used) { used.W.Dispose(); used.B.Dispose(); }   // the previous block's conv2, now in this block's entry layer
            pending = (w2.MoveToOuterDisposeScope(), bias.MoveToOuterDisposeScope(), b.Stride);
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new ProgressStep("converting", i + 1, spec.Blocks.Count));
        }

        // Head: bn2 into the last conv, flatten, fc with the BatchNorm1d folded in.
        var last = pending!.Value;
        var head = CarryKernels.BnRows(last.W, last.B, CarryKernels.Bn(sd, "bn2"));
        layers.Add(CarryKernels.Layer(head.W, head.B, last.Stride, Padding2d.All(1)));
        layers.Add(new FlattenLayer());
        var features = CarryKernels.Bn(sd, "features");
        var t = BatchNormFusion.Scale(features);
        var fcW = F64(sd.Require("fc.weight")) * t.unsqueeze(1);
        var fcB = (F64(sd.Require("fc.bias")) - F64(features.Mean)) * t + F64(features.Beta);
        layers.Add(new LinearLayer(fcW.to_type(ScalarType.Float32), fcB.to_type(ScalarType.Float32)));
        return new PlainModel(layers) { FixedInputSize = spec.InputSize };
    }

    /// <summary>The identity as a 1x1 conv over <paramref name="c"/> channels.</summary>
    static Tensor IdentityOneByOne(long c) => eye(c, dtype: ScalarType.Float64).reshape(c, c, 1, 1);

    static Tensor F64(Tensor t) => t.to_type(ScalarType.Float64);
}
