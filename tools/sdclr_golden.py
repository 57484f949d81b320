#!/usr/bin/python3
"""Golden values of one SDCLR training step (tests/sdclr_step_test.ts).

An independent torch implementation of SDCLR's step as the original code
(VITA-Group/SDCLR) builds it, written out here:

  - a tiny ResNet-18 (width 1/16, CIFAR stem, ImageNet input normalisation
    inside the model) whose every BN is dual (`<bn>.bn_list.0` for the dense
    branch, `<bn>.bn_list.1` for the pruned one, as SDCLR's
    `batch_norm_multiple`), and SDCLR's three-layer projection head with dual
    BN; module names follow torchvision (`downsample.0` conv, `downsample.1` BN);
  - masks by SDCLR's `Mask.magnitudePruning` rule (prune/mask.py): one
    threshold over all encoder conv weights, np.sort(|w|)[min(ceil(p*n), n-1)],
    keep |w| >= threshold (prune_percent 0.9, no random pruning);
  - view 1 through the dense branch (weights w, BN set 0), view 2 through the
    pruned branch (weights w*m in the forward, BN set 1);
  - NT-Xent, tau 0.2, over the 2N rows [z1; z2] normalised as z/(|z| + 1e-10)
    (ours; SDCLR's F.normalize differs below 1e-10 relative), positives i+-N,
    mean over the 2N anchors;
  - one backward of that loss (the original's two backward passes sum to it),
    then torch.optim.SGD(lr 0.5, momentum 0.9, weight_decay 1e-4) from zero
    momentum.

Weights are drawn from a fixed torch seed (torchvision init; both BN sets get
different random affine values and running statistics, so that mixing them up
shows). Everything is computed in float64 on the float32-rounded weights and
views; torch's own float32 error against that reference is stored as the
yardstick of each quantity.

Writes tests/fixtures/sdclr/step_golden.safetensors: F32 tensors
`param:<name>` (parameters and buffers before the step), `view1`, `view2`,
`loss` [1], `per_anchor_loss` [2N], `grad:<param>`, `new:<name>` (parameters
after the SGD step and the new running statistics), and U8 `mask:<conv weight>`;
metadata `config` (JSON: model, loss, optimizer, pruning) and `torch_f32_error`.

Run: /usr/bin/python3 tools/sdclr_golden.py   (needs python3-torch, numpy)
"""
import copy
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from golden_io import randomize_bn, save_safetensors, scaled_error

WIDTH = 1 / 16
BATCH = 8  # images per view
IMAGE = 32
OUT_DIM = 16
TEMPERATURE = 0.2
PRUNE_PERCENT = 0.9
LR, MOMENTUM, WEIGHT_DECAY = 0.5, 0.9, 1e-4
IMAGENET_NORM = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
# A gradient's error is measured against max(its own scale, GRAD_FLOOR x the largest gradient).
GRAD_FLOOR = 1e-3
OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                                    "sdclr", "step_golden.safetensors"))


class DualBN(nn.Module):
    """SDCLR's batch_norm_multiple with bn_names ["nonprune", "prune"]."""

    def __init__(self, norm, channels):
        super().__init__()
        self.bn_list = nn.ModuleList([norm(channels), norm(channels)])

    def forward(self, x, branch):
        return self.bn_list[branch](x)


class MaskedConv(nn.Conv2d):
    """SDCLR's prune_conv2d: the pruned branch convolves with weight * mask."""

    def forward(self, x, mask=None):
        weight = self.weight if mask is None else self.weight * mask
        return F.conv2d(x, weight, None, self.stride, self.padding)


def conv3x3(cin, cout, stride=1):
    return MaskedConv(cin, cout, 3, stride, 1, bias=False)


def conv1x1(cin, cout, stride=1):
    return MaskedConv(cin, cout, 1, stride, bias=False)


class Downsample(nn.Sequential):
    def forward(self, x, branch, masks):
        return self[1](self[0](x, masks.get(self[0])), branch)


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = DualBN(nn.BatchNorm2d, planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = DualBN(nn.BatchNorm2d, planes)
        self.downsample = downsample

    def forward(self, x, branch, masks):
        out = F.relu(self.bn1(self.conv1(x, masks.get(self.conv1)), branch))
        out = self.bn2(self.conv2(out, masks.get(self.conv2)), branch)
        identity = x if self.downsample is None else self.downsample(x, branch, masks)
        return F.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 layout with the CIFAR stem, a width multiplier,
    in-model ImageNet normalisation and dual BN; no fc."""

    def __init__(self, width):
        super().__init__()
        base = int(round(64 * width))
        self.inplanes = base
        self.conv1 = MaskedConv(3, base, 3, 1, 1, bias=False)
        self.bn1 = DualBN(nn.BatchNorm2d, base)
        self.layer1 = self._make_layer(base, 2)
        self.layer2 = self._make_layer(base * 2, 2, 2)
        self.layer3 = self._make_layer(base * 4, 2, 2)
        self.layer4 = self._make_layer(base * 8, 2, 2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = Downsample(conv1x1(self.inplanes, planes, stride), DualBN(nn.BatchNorm2d, planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.ModuleList(layers)

    def forward(self, x, branch, masks):
        mean = torch.tensor(IMAGENET_NORM[0], dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_NORM[1], dtype=x.dtype).view(1, 3, 1, 1)
        x = (x - mean) / std
        x = F.relu(self.bn1(self.conv1(x, masks.get(self.conv1)), branch))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                x = block(x, branch, masks)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class ProjHead(nn.Module):
    """SDCLR's proj_head (resnet_prune_multibn.py): fc1-bn1-relu-fc2-bn2-relu-fc3-bn3, dual BN."""

    def __init__(self, ch, out):
        super().__init__()
        self.fc1 = nn.Linear(ch, ch)
        self.bn1 = DualBN(nn.BatchNorm1d, ch)
        self.fc2 = nn.Linear(ch, ch, bias=False)
        self.bn2 = DualBN(nn.BatchNorm1d, ch)
        self.fc3 = nn.Linear(ch, out, bias=False)
        self.bn3 = DualBN(nn.BatchNorm1d, out)

    def forward(self, x, branch):
        x = F.relu(self.bn1(self.fc1(x), branch))
        x = F.relu(self.bn2(self.fc2(x), branch))
        return self.bn3(self.fc3(x), branch)


class SDCLR(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = ResNet18(WIDTH)
        self.head = ProjHead(int(round(512 * WIDTH)), OUT_DIM)

    def forward(self, view1, view2, masks):
        z1 = self.head(self.encoder(view1, 0, {}), 0)
        z2 = self.head(self.encoder(view2, 1, masks), 1)
        return torch.cat([z1, z2])


def nt_xent(z, tau):
    """Per-anchor NT-Xent over [z1; z2] with positives i +- N (ours: z / (|z| + 1e-10))."""
    n = z / (z.norm(dim=1, keepdim=True) + 1e-10)
    logits = n @ n.t() / tau
    rows = z.shape[0]
    logits = logits.masked_fill(torch.eye(rows, dtype=torch.bool), float("-inf"))
    partner = torch.cat([torch.arange(rows // 2, rows), torch.arange(0, rows // 2)])
    return -logits[torch.arange(rows), partner] + torch.logsumexp(logits, dim=1)


def sdclr_masks(model, prune_percent, random_prune_percent=0.0):
    """SDCLR's Mask.magnitudePruning (prune/mask.py), on the encoder's conv weights."""
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    weights = [m.weight.detach().cpu().numpy() for m in convs]
    prunable = [torch.ones_like(m.weight) for m in convs]
    remaining = torch.sum(torch.tensor([torch.sum(v) for v in prunable])).cpu().numpy()
    magnitude = prune_percent - random_prune_percent
    to_prune = np.ceil(magnitude * remaining).astype(int)
    vector = np.concatenate([w.flatten() for w in weights])
    threshold = np.sort(np.abs(vector))[min(to_prune, len(vector) - 1)]
    assert random_prune_percent == 0, "the golden uses magnitude pruning only (random draws differ)"
    return {m: (torch.abs(m.weight.detach()) >= threshold).to(m.weight.dtype) for m in convs}, float(threshold)


def step(model, view1, view2, mask_by_name):
    """Loss, per-anchor losses, gradients, and the state after one SGD step, in the model's dtype."""
    model = copy.deepcopy(model)
    masks = {m: mask_by_name[f"encoder.{n}.weight"].to(view1.dtype)
             for n, m in model.encoder.named_modules() if isinstance(m, nn.Conv2d)}
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    optimizer.zero_grad()
    per_anchor = nt_xent(model(view1, view2, masks), TEMPERATURE)
    loss = per_anchor.mean()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    optimizer.step()
    new = {n: t.detach().clone() for n, t in model.state_dict().items() if not n.endswith("num_batches_tracked")}
    return loss.detach().reshape(1), per_anchor.detach(), grads, new


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = SDCLR()
    randomize_bn(model, gen)
    model = model.float()
    view1 = torch.rand(BATCH, 3, IMAGE, IMAGE, generator=gen)
    view2 = torch.rand(BATCH, 3, IMAGE, IMAGE, generator=gen)

    conv_masks, threshold = sdclr_masks(model, PRUNE_PERCENT)
    names = {m: f"encoder.{n}.weight" for n, m in model.encoder.named_modules() if isinstance(m, nn.Conv2d)}
    mask_by_name = {names[m]: mask for m, mask in conv_masks.items()}

    loss64, anchors64, grads64, new64 = step(copy.deepcopy(model).double(), view1.double(), view2.double(),
                                             mask_by_name)
    loss32, anchors32, grads32, new32 = step(model, view1, view2, mask_by_name)

    tensors = {"view1": view1, "view2": view2, "loss": loss64.float(), "per_anchor_loss": anchors64.float()}
    for name, t in model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            tensors[f"param:{name}"] = t.detach().clone()
    for name, mask in mask_by_name.items():
        tensors[f"mask:{name}"] = mask.to(torch.uint8)
    for name, g in grads64.items():
        tensors[f"grad:{name}"] = g.float()
    for name, t in new64.items():
        tensors[f"new:{name}"] = t.float()

    grad_scale = max(float(g.abs().max()) for g in grads64.values())
    f32_error = {
        "loss": scaled_error(loss32, loss64),
        "per_anchor_loss": scaled_error(anchors32, anchors64),
        "grad": {n: scaled_error(grads32[n], grads64[n], GRAD_FLOOR * grad_scale) for n in grads64},
        "new": {n: scaled_error(new32[n], new64[n]) for n in new64},
    }
    total = sum(int(m.numel()) for m in mask_by_name.values())
    pruned = sum(int((m == 0).sum()) for m in mask_by_name.values())
    config = {
        "encoder": {"arch": "resnet18", "stem": "cifar", "width": WIDTH,
                    "normalize": {"mean": IMAGENET_NORM[0], "std": IMAGENET_NORM[1]}},
        "head": {"kind": "sdclr", "outDim": OUT_DIM},
        "loss": {"type": "ntxent", "temperature": TEMPERATURE},
        "batchSize": BATCH, "imageSize": IMAGE,
        "optimizer": {"kind": "sgd", "lr": LR, "momentum": MOMENTUM, "weightDecay": WEIGHT_DECAY},
        "prune": {"prunePercent": PRUNE_PERCENT, "randomPrunePercent": 0, "threshold": threshold,
                  "convWeights": total, "pruned": pruned},
    }
    # F32 tensors first, then U8, each by name (the layout the fixture was made with).
    ordered = sorted(tensors.items(), key=lambda kv: (kv[1].dtype == torch.uint8, kv[0]))
    save_safetensors(OUT, ordered, {"config": json.dumps(config), "torch_f32_error": json.dumps(f32_error),
                                    "grad_floor": str(GRAD_FLOOR), "torch": torch.__version__})
    print(f"loss {float(loss64):.8f}; masks prune {pruned}/{total} conv weights (threshold {threshold:.6g})")
    print(f"torch float32 vs float64 scaled error: loss {f32_error['loss']:.2e}, "
          f"per-anchor {f32_error['per_anchor_loss']:.2e}, grads max {max(f32_error['grad'].values()):.2e}, "
          f"new values max {max(f32_error['new'].values()):.2e}")
    floats = sum(t.numel() for t in tensors.values())
    print(f"wrote {OUT}: {len(tensors)} tensors, {floats} values, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
