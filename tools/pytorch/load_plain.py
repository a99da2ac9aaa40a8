#!/usr/bin/env python3
"""Loads a plain network written by rmnet (`rmnet convert model.pth -o plain.pth`) as a PyTorch module.

    from load_plain import load_plain
    model = load_plain("plain.pth")          # torch.nn.Module in eval mode on the CPU
    y = model(x)                             # x: [N, C, H, W]

or from the shell:  python3 load_plain.py plain.pth [input.pt]   (prints the layers; with an input tensor
saved by torch.save, its output). The .pth is read with torch.load(weights_only=True): a dict holding the
architecture JSON under "rmnet.architecture" and the weights under "state_dict" (layers.{i}.weight/bias).
A .safetensors written by rmnet loads too (architecture in its metadata).

float16 (`rmnet convert --dtype float16`) and bfloat16 weights are cast to float32 on loading, since PyTorch's CPU
convolutions take neither; `load_plain(path, keep_dtype=True)` keeps them (e.g. for `model.cuda()`). The model casts
its input to its own dtype, so a float32 input runs either way.
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

KEY = "rmnet.architecture"


def _pads(spec):
    top, left, bottom, right = spec["pads"]
    return top, left, bottom, right


class Conv(nn.Module):
    def __init__(self, spec, weight, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.empty_like(weight))
        self.bias = nn.Parameter(torch.empty_like(bias))
        self.stride = tuple(spec["stride"])
        self.groups = spec["groups"]
        self.pads = _pads(spec)

    def forward(self, x):
        top, left, bottom, right = self.pads
        if (top, left) != (bottom, right):  # conv2d pads symmetrically only
            x = F.pad(x, (left, right, top, bottom))
            top = left = 0
        return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), 1, self.groups)


class MaxPool(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.kernel, self.stride, self.pads = spec["kernel"], spec["stride"], _pads(spec)

    def forward(self, x):
        top, left, bottom, right = self.pads
        if (top, left) != (bottom, right):
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
            top = left = 0
        return F.max_pool2d(x, self.kernel, self.stride, (top, left))


class PRelu(nn.Module):
    """Per-channel slopes; slope 1 carries a (negative) block input through unchanged."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(torch.empty_like(weight))

    def forward(self, x):
        return F.prelu(x, self.weight)


class Clamp(nn.Module):
    """Per-channel bounds: [0, 6] is ReLU6, (-inf, inf) a carried channel."""

    def __init__(self, lower, upper):
        super().__init__()
        self.register_buffer("lower", torch.empty_like(lower))
        self.register_buffer("upper", torch.empty_like(upper))

    def forward(self, x):
        return torch.minimum(torch.maximum(x, self.lower.view(-1, 1, 1)), self.upper.view(-1, 1, 1))


class SqueezeExcite(nn.Module):
    """SE on channels [offset, offset + count); the channels before (the carried block input) pass unchanged."""

    def __init__(self, spec, sd, prefix):
        super().__init__()
        self.offset, self.count = spec["offset"], spec["count"]
        self.fc1 = nn.Conv2d(1, 1, 1)
        self.fc2 = nn.Conv2d(1, 1, 1)
        for name in ("fc1", "fc2"):
            conv = getattr(self, name)
            conv.weight = nn.Parameter(torch.empty_like(sd[f"{prefix}.{name}.weight"]))
            conv.bias = nn.Parameter(torch.empty_like(sd[f"{prefix}.{name}.bias"]))

    def forward(self, x):
        branch = x[:, self.offset:self.offset + self.count]
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(branch.mean((2, 3), keepdim=True)))))
        return torch.cat([x[:, :self.offset], branch * gate], 1) if self.offset else branch * gate


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def build(arch, sd):
    """The module for an architecture dict and a state dict with the shapes (weights are not copied)."""
    if arch.get("format") != "rmnet-plain/1":
        raise ValueError(f"architecture format {arch.get('format')!r} is not rmnet-plain/1")
    layers = []
    for i, spec in enumerate(arch["layers"]):
        p = f"layers.{i}"
        kind = spec["kind"]
        if kind == "conv":
            layers.append(Conv(spec, sd[f"{p}.weight"], sd[f"{p}.bias"]))
        elif kind == "linear":
            layers.append(nn.Linear(sd[f"{p}.weight"].shape[1], sd[f"{p}.weight"].shape[0], dtype=sd[f"{p}.weight"].dtype))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "prelu":
            layers.append(PRelu(sd[f"{p}.weight"]))
        elif kind == "clamp":
            layers.append(Clamp(sd[f"{p}.lower"], sd[f"{p}.upper"]))
        elif kind == "se":
            layers.append(SqueezeExcite(spec, sd, p))
        elif kind == "maxpool":
            layers.append(MaxPool(spec))
        elif kind == "gap":
            layers.append(Lambda(lambda x: x.mean((2, 3), keepdim=True)))
        elif kind == "flatten":
            layers.append(nn.Flatten(1))
        else:
            raise ValueError(f"unknown layer kind {kind!r} at layer {i}")
    return PlainNet(layers)


class PlainNet(nn.Module):
    """The layers in order: no additions, no branches (except SE's gate)."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        x = x.to(next(self.parameters()).dtype)
        for layer in self.layers:
            x = layer(x)
        return x


def _read_safetensors(path):
    """(metadata, tensors) of a safetensors file: an 8-byte header length, a JSON header, the data."""
    dtypes = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        data = f.read()
    meta = header.pop("__metadata__", {})
    sd = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = dtypes[entry["dtype"]]
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        sd[name] = flat.reshape(entry["shape"])
    return meta, sd


def load_plain(path, keep_dtype=False):
    """The plain network in `path` (.pth or .safetensors) as an eval-mode module on the CPU with the file's weights,
    in float32 where they are float16 or bfloat16 (PyTorch's CPU convolutions take neither) unless keep_dtype."""
    if path.endswith(".safetensors"):
        meta, sd = _read_safetensors(path)
        arch = json.loads(meta[KEY])
    else:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if KEY not in saved:
            raise ValueError(f"{path}: no {KEY!r}: not a plain network written by rmnet (convert the original again)")
        arch, sd = json.loads(saved[KEY]), saved["state_dict"]
    model = build(arch, sd)
    model.load_state_dict(sd, strict=True)
    model.input_channels = arch["input_channels"]
    model.input_size = arch.get("input_size")  # set where the head fixes it (IResNet)
    if not keep_dtype and any(p.dtype in (torch.float16, torch.bfloat16) for p in model.parameters()):
        model.float()
    return model.eval()


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    net = load_plain(sys.argv[1])
    print(net.layers)
    if len(sys.argv) == 3:
        with torch.no_grad():
            print(net(torch.load(sys.argv[2], weights_only=True)))
