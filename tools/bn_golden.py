#!/usr/bin/python3
"""Golden fixture for training-mode BatchNorm and its backward
(tests/fixtures/nn/bn_golden.json).

torch.nn.BatchNorm1d/2d in train mode (momentum 0.1, eps 1e-5), float64, on
fixed inputs: the output, torch's own fused backward (d input, d weight,
d bias) for a fixed upstream gradient, and the new running statistics. One
2-d case has a large common offset (mean 50, std 0.5): a backward that
subtracted large sums instead of centring first would lose digits there.

Run: /usr/bin/python3 tools/bn_golden.py  (needs torch; tests do not)
"""

import json
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "nn",
                   "bn_golden.json")

CASES = [
    {"name": "bn2d", "shape": [4, 3, 5, 5], "offset": 1.0, "scale": 3.0},
    {"name": "bn2d_offset", "shape": [3, 2, 4, 4], "offset": 50.0, "scale": 0.5},
    {"name": "bn1d", "shape": [6, 5], "offset": -2.0, "scale": 1.5},
]


def run(case, gen):
    shape = case["shape"]
    c = shape[1]
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * case["scale"] + case["offset"])
    dy = torch.randn(shape, generator=gen, dtype=torch.float64)
    bn = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(c).double()
    bn.weight.data = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
    bn.bias.data = torch.randn(c, generator=gen, dtype=torch.float64)
    bn.running_mean.data = torch.randn(c, generator=gen, dtype=torch.float64)
    bn.running_var.data = torch.rand(c, generator=gen, dtype=torch.float64) + 0.5
    inputs = {
        "x": x.flatten().tolist(),
        "dy": dy.flatten().tolist(),
        "weight": bn.weight.data.tolist(),
        "bias": bn.bias.data.tolist(),
        "running_mean": bn.running_mean.data.tolist(),
        "running_var": bn.running_var.data.tolist(),
    }
    xr = x.clone().requires_grad_(True)
    bn.train()
    y = bn(xr)
    y.backward(dy)
    return {
        "name": case["name"],
        "shape": shape,
        "inputs": inputs,
        "y": y.detach().flatten().tolist(),
        "dx": xr.grad.flatten().tolist(),
        "dweight": bn.weight.grad.tolist(),
        "dbias": bn.bias.grad.tolist(),
        "running_mean": bn.running_mean.data.tolist(),
        "running_var": bn.running_var.data.tolist(),
    }


def main():
    gen = torch.Generator().manual_seed(1414)
    cases = [run(case, gen) for case in CASES]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
