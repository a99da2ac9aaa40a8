using System.IO.Compression;
using System.Text;
using Xunit;
using static RMNet.Tests.CliHarness;

namespace RMNet.Tests;

/// <summary>
/// Pickles written by hand that lie in ways torch.save never would: each must end in exit 2 with one line naming
/// the file and the problem, writing nothing, allocating nothing large. Run with no other test beside them: the
/// allocation count is the process's, which parallel tests would add to (a CI run saw 100 MB from others).
/// </summary>
[Collection("Training")]
public class HostilePickleTests
{
    /// <summary>Opcodes of pickle protocol 2, enough to write tensors, dicts and calls.</summary>
    sealed class Pickle
    {
        readonly MemoryStream _s = new();
        public Pickle() => _s.Write(new byte[] { 0x80, 0x02 });   // PROTO 2
        public Pickle Op(char op) { _s.WriteByte((byte)op); return this; }
        public Pickle Str(string v) { var b = Encoding.UTF8.GetBytes(v); Op('X'); _s.Write(BitConverter.GetBytes(b.Length)); _s.Write(b); return this; }
        public Pickle Int(int v) { Op('J'); _s.Write(BitConverter.GetBytes(v)); return this; }
        public Pickle Global(string module, string name) { Op('c'); _s.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n")); return this; }
        public Pickle Tuple(params int[] values) { Op('('); foreach (var v in values) Int(v); return Op('t'); }
        /// <summary>_rebuild_tensor_v2 of float storage '0' (count elements) with the given offset, shape and stride.</summary>
        public Pickle Tensor(int count, int offset, int[] shape, int[] stride) =>
            Global("torch._utils", "_rebuild_tensor_v2").Op('(')
                .Op('(').Str("storage").Global("torch", "FloatStorage").Str("0").Str("cpu").Int(count).Op('t').Op('Q')
                .Int(offset).Tuple(shape).Tuple(stride).Op('\x89').Op('}').Op('t').Op('R');
        public byte[] Bytes() => _s.ToArray().Concat(new[] { (byte)'.' }).ToArray();
    }

    static string Archive(TempDir dir, byte[] pickle, int storageBytes = 16)
    {
        string path = dir.File("hostile.pth");
        using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
        using (var s = zip.CreateEntry("hostile/data.pkl").Open()) s.Write(pickle);
        using (var s = zip.CreateEntry("hostile/data/0").Open()) s.Write(new byte[storageBytes]);
        return path;
    }

    public static IEnumerable<object[]> Cases() => new (string Name, Func<Pickle, Pickle> Body, string Expected)[]
    {
        ("zero strides claiming 10^9 elements", p => p.Op('}').Str("w").Tensor(4, 0, new[] { 1_000_000_000 }, new[] { 0 }).Op('s'),
            "tensor 'w' has 1000000000 elements, more than the 4 of its storage"),
        ("a view past its storage", p => p.Op('}').Str("w").Tensor(4, 2, new[] { 2, 2 }, new[] { 2, 1 }).Op('s'),
            "tensor 'w' reaches element 5 of a storage of 4 elements"),
        ("a call of a record (an object used as a function)", p => p.Op('}').Str("w").Global("torchvision.models.resnet", "ResNet").Op(')').Op('\x81').Op(')').Op('R').Op('s'),
            "pickle calls an object that is not a named global, refused"),
        ("getattr inside a module's state", p => p.Global("torch.nn.modules.conv", "Conv2d").Op(')').Op('\x81').Op('}').Str("_parameters")
            .Global("builtins", "getattr").Op('(').Str("os").Str("system").Op('t').Op('R').Op('s').Op('b'),
            "pickle asks for global 'builtins.getattr', refused"),
        ("a module holding no tensors", p => p.Global("torch.nn.modules.conv", "Conv2d").Op(')').Op('\x81').Op('}').Str("_parameters").Op('}').Op('s').Op('b'),
            "the checkpoint holds no tensors"),
        ("a list at the top", p => p.Op(']'), "holds a list, not a state dict or a module" + RMNet.IO.PickledWeights.ReSave),
        // Numpy metadata's _codecs.encode is evaluated for latin-1 only, by rmnet itself; every other codec call is refused.
        ("_codecs.encode with another codec", p => p.Op('}').Str("m").Global("_codecs", "encode").Str("n").Str("rot13").Op('\x86').Op('R').Op('s'),
            "pickle calls _codecs.encode with encoding 'rot13', refused"),
        ("_codecs.encode of text beyond latin-1", p => p.Op('}').Str("m").Global("_codecs", "encode").Str("\u20ac").Str("latin1").Op('\x86').Op('R').Op('s'),
            "pickle calls _codecs.encode on text that latin-1 cannot encode, refused"),
        ("_codecs.encode of a number", p => p.Op('}').Str("m").Global("_codecs", "encode").Int(7).Str("latin1").Op('\x86').Op('R').Op('s'),
            "pickle calls _codecs.encode without a string and an encoding, refused"),
        ("_codecs.decode", p => p.Op('}').Str("m").Global("_codecs", "decode").Str("n").Str("latin1").Op('\x86').Op('R').Op('s'),
            "pickle asks for global '_codecs.decode', refused"),
        ("a numpy array whose class is os.system", p => p.Op('}').Str("m").Global("numpy.core.multiarray", "_reconstruct")
            .Op('(').Global("posix", "system").Tuple(0).Str("b").Op('t').Op('R').Op('s'),
            "pickle rebuilds a numpy array of class 'posix.system', refused"),
    }.Select(c => new object[] { c.Name, c.Body(new Pickle()).Bytes(), c.Expected });

    [Theory]
    [MemberData(nameof(Cases))]
    public void HandWrittenLiesAreRefused(string name, byte[] pickle, string expected)
    {
        using var dir = Fixture.Temp();
        string path = Archive(dir, pickle);
        string output = dir.File("out.onnx");
        long before = GC.GetTotalAllocatedBytes();
        var (code, _, stderr) = Rmnet("convert", path, "-o", output, "--quiet");
        Assert.True(GC.GetTotalAllocatedBytes() - before < 100_000_000, name);
        Assert.Equal(2, code);
        Assert.Equal($"rmnet: error: {path}: {expected}", Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)).Split(": only ")[0]);
        Assert.False(File.Exists(output));
    }
}
