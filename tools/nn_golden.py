#!/usr/bin/python3
"""Golden values for the nn builders (tests/nn_torch_parity_test.ts).

Builds tiny-width ResNets with torchvision's structure (written out here, since
torchvision may be absent) plus the SimCLR/SDCLR/ETH heads, draws weights from
a fixed torch seed (torchvision init, then randomised BN affine values and
running statistics so that eval mode is a real test), and computes in float64
on the float32-rounded weights and inputs:

  - encoder features in train-mode BN and eval-mode BN,
  - the new BN running statistics after one train-mode forward,
  - torch's own float32 error on each of these (metadata), the yardstick the
    test uses where float32 is ill-conditioned (ResNet-50 at 32x32 with batch
    4 normalises its last stage over 4 values per channel),
  - gradients of sum(features * W) w.r.t. every parameter (train mode),
  - head outputs (train and eval), new head BN statistics and head gradients,
    the head fed with the stored train-mode features.

Writes tests/fixtures/nn/golden.safetensors (float32 tensors, names
`<case>:<kind>[:<param>]`, configs in the metadata).

Run: /usr/bin/python3 tools/nn_golden.py   (needs python3-torch, numpy)
"""
import copy
import json
import os

import torch
import torch.nn as nn

from golden_io import randomize_bn, save_safetensors, scaled_error

# A gradient's error is measured against max(its own scale, GRAD_FLOOR x the largest gradient).
GRAD_FLOOR = 1e-3
OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "nn", "golden.safetensors"))


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)  # torchvision v1.5: stride on the 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.ResNet without fc, with a width multiplier, a stem
    choice and optional input normalisation."""

    def __init__(self, block, layers, width, stem, normalize=None):
        super().__init__()
        base = int(round(64 * width))
        self.normalize = normalize
        self.inplanes = base
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, base, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, base * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, base * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, base * 8, layers[3], 2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        if self.normalize is not None:
            mean = torch.tensor(self.normalize[0], dtype=x.dtype).view(1, 3, 1, 1)
            std = torch.tensor(self.normalize[1], dtype=x.dtype).view(1, 3, 1, 1)
            x = (x - mean) / std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class ProjHead(nn.Module):
    """SDCLR's proj_head: fc1-bn1-relu-fc2-bn2[-relu-fc3-bn3]."""

    def __init__(self, ch, hidden, out, three_layers):
        super().__init__()
        self.fc1 = nn.Linear(ch, hidden)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.three = three_layers
        if three_layers:
            self.fc2 = nn.Linear(hidden, hidden, bias=False)
            self.bn2 = nn.BatchNorm1d(hidden)
            self.fc3 = nn.Linear(hidden, out, bias=False)
            self.bn3 = nn.BatchNorm1d(out)
        else:
            self.fc2 = nn.Linear(hidden, out, bias=False)
            self.bn2 = nn.BatchNorm1d(out)

    def forward(self, x):
        x = self.bn2(self.fc2(torch.relu(self.bn1(self.fc1(x)))))
        if self.three:
            x = self.bn3(self.fc3(torch.relu(x)))
        return x


class EthProjection(nn.Module):
    """Linear+ReLU per hidden size, then Linear(.., out) (names fc1, fc2, ...)."""

    def __init__(self, ch, hidden, out):
        super().__init__()
        sizes = [ch] + list(hidden)
        for i in range(len(hidden)):
            setattr(self, f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
        setattr(self, f"fc{len(hidden) + 1}", nn.Linear(sizes[-1], out))
        self.n = len(hidden) + 1

    def forward(self, x):
        for i in range(1, self.n):
            x = torch.relu(getattr(self, f"fc{i}")(x))
        return getattr(self, f"fc{self.n}")(x)


def state(model, prefix):
    """Parameters and BN buffers (no num_batches_tracked), float32, prefixed."""
    out = {}
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        out[f"{prefix}.{name}"] = t.detach().to(torch.float32).clone()
    return out


def forward_backward(model, x, weights):
    """Eval output, train output, gradients of sum(train output * weights) and
    new running statistics, in the model's dtype; the model's state is restored."""
    saved = {n: t.detach().clone() for n, t in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        out_eval = model(x)
    model.train()
    for p in model.parameters():
        p.grad = None
    out_train = model(x)
    (out_train * weights.to(x.dtype)).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    stats = {n: t.detach().clone() for n, t in model.state_dict().items()
             if n.endswith("running_mean") or n.endswith("running_var")}
    model.load_state_dict(saved)
    return out_eval.detach(), out_train.detach(), grads, stats


def run_case(tensors, case, model, prefix, x, gen, train):
    """Stores the float64 reference (eval output; with `train` also the train
    output, new running stats and gradients of sum(train output * W)); returns the train output and torch's
    own float32 error against that reference, the yardstick for ill-conditioned
    cases (deep BN over few values per channel amplifies float32 rounding)."""
    model32 = copy.deepcopy(model).float()
    model64 = copy.deepcopy(model).double()
    with torch.no_grad():
        probe = model64.eval()(x.double())
    weights = torch.randn(probe.shape, generator=gen, dtype=torch.float32)
    ref = forward_backward(model64, x.double(), weights)
    f32 = forward_backward(model32, x.float(), weights)
    eval64, train64, grads64, stats64 = ref
    eval32, train32, grads32, stats32 = f32
    tensors[f"{case}:output_eval"] = eval64.float()
    if not train:
        return None, {"output_eval": scaled_error(eval32, eval64)}
    tensors[f"{case}:output_train"] = train64.float()
    tensors[f"{case}:grad_weights"] = weights
    for name, g in grads64.items():
        tensors[f"{case}:grad:{prefix}.{name}"] = g.float()
    for name, t in stats64.items():
        tensors[f"{case}:new:{prefix}.{name}"] = t.float()
    grad_scale = max(float(g.abs().max()) for g in grads64.values())
    torch_f32_error = {
        "output_eval": scaled_error(eval32, eval64),
        "output_train": scaled_error(train32, train64),
        "new": max(scaled_error(stats32[n], stats64[n]) for n in stats64) if stats64 else 0.0,
        "grad": {f"{prefix}.{n}": scaled_error(grads32[n], grads64[n], GRAD_FLOOR * grad_scale)
                 for n in grads64},
    }
    return train64.float(), torch_f32_error


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    width = 1 / 16
    imagenet_norm = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    r18 = ResNet(BasicBlock, [2, 2, 2, 2], width, "cifar", imagenet_norm)
    r50 = ResNet(Bottleneck, [3, 4, 6, 3], width, "imagenet")
    randomize_bn(r18, gen)
    randomize_bn(r50, gen)
    r18_config = {"arch": "resnet18", "stem": "cifar", "width": width,
                  "normalize": {"mean": imagenet_norm[0], "std": imagenet_norm[1]}}
    r50_config = {"arch": "resnet50", "stem": "imagenet", "width": width}
    # (case, model, config, input size, train mode too, heads on its train features).
    # ResNet-50 at 32x32 (ETH's shape) is checked in eval mode only: with batch 4
    # its last stage's train-mode BN normalises 4 values per channel, where a
    # float32 rounding of the inputs alone moves the output by ~1e-3 of its
    # scale; train mode and gradients are checked at 64x64 (16 values).
    cases = [
        ("r18", r18, r18_config, 32, True,
         {"r18_sdclr": {"kind": "sdclr", "outDim": 16}, "r18_simclr": {"kind": "simclr", "outDim": 16}}),
        ("r50", r50, r50_config, 32, False, {}),
        ("r50_64", r50, r50_config, 64, True,
         {"r50_projection": {"kind": "projection", "outDim": 16, "hidden": [24]}}),
    ]
    tensors = {}
    meta = {}
    params_case = {}
    for case, model, config, size, train, heads in cases:
        x = torch.randn(4, 3, size, size, generator=gen)
        tensors[f"{case}:input"] = x
        if id(model) not in params_case:
            params_case[id(model)] = case
            for name, t in state(model, "encoder").items():
                tensors[f"{case}:param:{name}"] = t
        features, f32 = run_case(tensors, case, model, "encoder", x, gen, train)
        meta[case] = {"encoder": config, "params": params_case[id(model)], "train": train, "torch_f32_error": f32}
        for head_case, head_cfg in heads.items():
            dim = features.shape[1]
            if head_cfg["kind"] == "projection":
                head = EthProjection(dim, head_cfg["hidden"], head_cfg["outDim"])
            else:
                head = ProjHead(dim, dim, head_cfg["outDim"], head_cfg["kind"] == "sdclr")
            randomize_bn(head, gen)
            tensors[f"{head_case}:input"] = features
            for name, t in state(head, "head").items():
                tensors[f"{head_case}:param:{name}"] = t
            _, f32 = run_case(tensors, head_case, head, "head", features, gen, True)
            meta[head_case] = {"head": head_cfg, "params": head_case, "train": True, "torch_f32_error": f32}
    save_safetensors(OUT, tensors.items(), {"cases": json.dumps(meta), "grad_floor": str(GRAD_FLOOR), "torch": torch.__version__})
    for case, m in meta.items():
        e = m["torch_f32_error"]
        text = f"{case}: torch float32 vs float64 scaled error: eval {e['output_eval']:.2e}"
        if m["train"]:
            text += f", train {e['output_train']:.2e}, stats {e['new']:.2e}, grads max {max(e['grad'].values()):.2e}"
        print(text)
    total = sum(t.numel() for t in tensors.values())
    print(f"wrote {OUT}: {len(tensors)} tensors, {total} floats, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
