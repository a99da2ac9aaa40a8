using RMNet.Models;
using static TorchSharp.torch;

namespace RMNet.Tests;

/// <summary>
/// The closed-form weights of tools/fixtures/make_fixtures.py (formula_state_dict), rebuilt here so a full-size
/// ResNet-50 needs no 100 MB fixture: value[i] = sin(0.37 i + 6.283 phase(name)), scaled per kind of tensor.
/// PyTorch's output for these weights is committed in Fixtures/formula_resnet50.io.pth.
/// </summary>
public static class FormulaCheckpoint
{
    static double Phase(string name)
    {
        long sum = 0;
        for (int j = 0; j < name.Length; j++) sum += (j + 1) * (long)name[j];
        return sum % 997 * 0.001;
    }

    public static double[] Values(string name, long count)
    {
        double phase = Phase(name);
        var v = new double[count];
        for (long i = 0; i < count; i++) v[i] = Math.Sin(0.37 * i + 6.283 * phase);
        return v;
    }

    public static StateDict Create(ResNetSpec spec)
    {
        var sd = new StateDict("formula " + spec.DisplayName);
        foreach (var (name, shape) in spec.ExpectedParameters())
        {
            long n = shape.Aggregate(1L, (a, b) => a * b);
            var v = Values(name, n);
            bool isBn = name.Contains(".bn") || name.StartsWith("bn1") || name.Contains("downsample.1");
            for (long i = 0; i < n; i++)
            {
                if (name.EndsWith("running_var")) v[i] = 1.0 + 0.5 * v[i];
                else if (name.EndsWith("running_mean")) v[i] = 0.2 * v[i];
                else if (isBn) v[i] = name.EndsWith("weight") ? 1.0 + 0.4 * v[i] : 0.1 * v[i];
                else if (name.EndsWith("weight")) v[i] *= Math.Sqrt(3.0 / shape.Skip(1).Aggregate(1L, (a, b) => a * b));
                else v[i] = 0.1 * v[i];
            }
            sd.Add(name, tensor(v.Select(x => (float)x).ToArray(), shape));
        }
        return sd;
    }

    public static Tensor Input(long[] shape) =>
        tensor(Values("input", shape.Aggregate(1L, (a, b) => a * b)).Select(x => (float)x).ToArray(), shape);
}
