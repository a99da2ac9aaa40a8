"""The job `rmnet convert resnet50.pth -o plain.onnx --rm-mode dense` does, done in PyTorch, timed: read the
checkpoint, fold every BatchNorm, make each Bottleneck block plain in the paper's dense form (the input reserved in
extra Dirac channels of conv1 and conv2, the shortcut merged into conv3), check the plain network against the
original on one image, and write it as ONNX with PyTorch's exporter. Written here from the math in docs/design.md
(sections 1, 3, 4), independently of rmnet's C#, as the baseline for rmnet's conversion time (docs/benchmarks.md).

Run:  /usr/bin/python3 tools/pytorch/rm_resnet_time.py resnet50.pth out.onnx
"""
import sys
import time

t0 = time.perf_counter()
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet50

t_import = time.perf_counter()


def fold(conv_w, bn, prefix):
    """A conv without bias followed by BN `prefix` -> (weight, bias), in float64."""
    g, b = bn[prefix + ".weight"].double(), bn[prefix + ".bias"].double()
    m, v = bn[prefix + ".running_mean"].double(), bn[prefix + ".running_var"].double()
    s = g / torch.sqrt(v + 1e-5)
    return conv_w.double() * s.reshape(-1, 1, 1, 1), b - m * s


def dirac(rows, cols, k):
    """A [rows, cols, k, k] kernel passing channel i to output i at the centre tap."""
    w = torch.zeros(rows, cols, k, k, dtype=torch.float64)
    idx = torch.arange(rows)
    w[idx, idx, k // 2, k // 2] = 1.0
    return w


def plain_layers(sd):
    """The plain network as a list of (kind, weight, bias, stride, padding)."""
    layers = []
    w, b = fold(sd["conv1.weight"], sd, "bn1")
    layers += [("conv", w, b, 2, 3), ("relu",), ("maxpool",)]
    for stage, blocks in enumerate((3, 4, 6, 3)):
        for i in range(blocks):
            p = f"layer{stage + 1}.{i}"
            stride = 2 if stage > 0 and i == 0 else 1
            w1, b1 = fold(sd[p + ".conv1.weight"], sd, p + ".bn1")
            w2, b2 = fold(sd[p + ".conv2.weight"], sd, p + ".bn2")
            w3, b3 = fold(sd[p + ".conv3.weight"], sd, p + ".bn3")
            c, mid, out = w1.shape[1], w1.shape[0], w3.shape[0]
            # conv1: [x ; conv1(x)]; the reserved x is non-negative (a ReLU's output), so it passes every ReLU.
            k1 = torch.cat([dirac(c, c, 1), w1], 0)
            c1 = torch.cat([torch.zeros(c, dtype=torch.float64), b1])
            # conv2 (dense): the reserved channels sampled at the centre tap, with the block's stride.
            k2 = torch.zeros(c + mid, c + mid, 3, 3, dtype=torch.float64)
            k2[:c, :c] = dirac(c, c, 3)
            k2[c:, c:] = w2
            c2 = torch.cat([torch.zeros(c, dtype=torch.float64), b2])
            # conv3: the branch plus the shortcut (identity, or the strided 1x1 projection, already sampled by conv2).
            k3 = torch.zeros(out, c + mid, 1, 1, dtype=torch.float64)
            k3[:, c:] = w3
            c3 = b3.clone()
            if p + ".downsample.0.weight" in sd:
                wd, bd = fold(sd[p + ".downsample.0.weight"], sd, p + ".downsample.1")
                k3[:, :c] += wd
                c3 += bd
            else:
                k3[:, :c] += dirac(out, c, 1)
            layers += [("conv", k1, c1, 1, 0), ("relu",), ("conv", k2, c2, stride, 1), ("relu",), ("conv", k3, c3, 1, 0), ("relu",)]
    layers += [("pool",), ("fc", sd["fc.weight"].double(), sd["fc.bias"].double())]
    return layers


class Plain(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.ops = []
        mods = []
        for layer in layers:
            if layer[0] == "conv":
                _, w, b, stride, pad = layer
                m = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride, pad)
                m.weight.data, m.bias.data = w.float(), b.float()
                mods.append(m)
            elif layer[0] == "relu":
                mods.append(nn.ReLU())
            elif layer[0] == "maxpool":
                mods.append(nn.MaxPool2d(3, 2, 1))
            elif layer[0] == "pool":
                mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            else:
                m = nn.Linear(layer[1].shape[1], layer[1].shape[0])
                m.weight.data, m.bias.data = layer[1].float(), layer[2].float()
                mods.append(m)
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)


def main(src, dst):
    t1 = time.perf_counter()
    sd = torch.load(src, map_location="cpu")
    sd = sd.get("state_dict", sd)
    t2 = time.perf_counter()
    with torch.no_grad():
        plain = Plain(plain_layers(sd)).eval()
    t3 = time.perf_counter()
    with torch.no_grad():
        original = resnet50()
        original.load_state_dict(sd)
        original.eval()
        x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        a, b = original(x), plain(x)
        rel = ((a - b).abs().max() / a.abs().max()).item()
    t4 = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(plain, x, dst, opset_version=13, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}, "output": {0: "N"}})
    t5 = time.perf_counter()
    params = sum(p.numel() for p in plain.parameters())
    print(f"plain: {params / 1e6:.2f}M parameters, max rel error vs original {rel:.1e}")
    print(f"import {t_import - t0:.2f} s, load {t2 - t1:.2f} s, RM {t3 - t2:.2f} s, check {t4 - t3:.2f} s, "
          f"export {t5 - t4:.2f} s; total {t5 - t0:.2f} s (without the check {t5 - t0 - (t4 - t3):.2f} s)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
