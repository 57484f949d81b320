"""Pieces the torch golden generators share (tools/nn_golden.py, tools/sdclr_golden.py):
safetensors output as src/artifacts/safetensors.ts reads it, the scaled error
measure, and random BatchNorm statistics. Needs python3-torch and numpy."""
import json
import os
import struct

import numpy as np
import torch
import torch.nn as nn


def randomize_bn(model, gen):
    """Random affine values and running statistics for every BN, so that mixing them up shows."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=gen) + 0.5
            m.bias.data = torch.randn(c, generator=gen) * 0.2
            m.running_mean.data = torch.randn(c, generator=gen) * 0.2
            m.running_var.data = torch.rand(c, generator=gen) + 0.5


def scaled_error(actual, expected, floor=0.0):
    """max |a - b| / max(max |b|, floor): the error relative to the reference's
    scale (the floor serves gradients that are zero in exact arithmetic, such
    as a bias followed by BN); 0 when both are all zero."""
    expected = expected.double()
    scale = max(float(expected.abs().max()), floor)
    return float((actual.double() - expected).abs().max()) / scale if scale > 0 else 0.0


def save_safetensors(path, items, metadata):
    """Writes (name, tensor) pairs in the given order, contiguous: uint8 tensors as U8,
    everything else as little-endian F32."""
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, t in items:
        if t.dtype == torch.uint8:
            arr, code = np.ascontiguousarray(t.numpy()), "U8"
        else:
            arr, code = np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4")), "F32"
        data = arr.tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
