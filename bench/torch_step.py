"""The PyTorch reference of `deno task bench`: one SimCLR or SDCLR training step
(two views -> ResNet encoder -> projection head -> NT-Xent or weighted NT-Xent ->
backward -> SGD momentum or Adam update), timed after warm-up, eager mode.

The models are written here (torchvision-style ResNet-18/34/50 with CIFAR or
ImageNet stem, the SimCLR head, SDCLR's dual-BN network with masked conv
weights) so that torchvision is not needed. Prints a human line on stderr and
one JSON object on the last line of stdout.

    python3 bench/torch_step.py --model resnet18 --stem cifar --batch 32 --steps 10 --threads 2
"""

import argparse
import json
import math
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as error:  # the Deno side reports this as "no torch in <python>"
    print(f"torch_step.py: cannot import torch with {sys.executable}: {error}", file=sys.stderr)
    sys.exit(3)

ARCHS = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet34": ("basic", [3, 4, 6, 3]),
         "resnet50": ("bottleneck", [3, 4, 6, 3])}


class DualBN(nn.Module):
    """One BatchNorm per branch (SDCLR's dual BN); branch 0 alone for SimCLR."""

    def __init__(self, kind, channels, branches):
        super().__init__()
        bn = nn.BatchNorm2d if kind == 2 else nn.BatchNorm1d
        self.bn_list = nn.ModuleList([bn(channels) for _ in range(branches)])

    def forward(self, x, branch):
        return self.bn_list[branch](x)


class MaskedConv(nn.Conv2d):
    """Conv2d whose weight is multiplied by a mask on the pruned branch."""

    def forward(self, x, mask=None):
        weight = self.weight if mask is None else self.weight * mask
        return F.conv2d(x, weight, None, self.stride, self.padding)


def conv(cin, cout, k, stride=1):
    return MaskedConv(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class Block(nn.Module):
    def __init__(self, kind, cin, planes, stride, branches):
        super().__init__()
        self.kind = kind
        expansion = 1 if kind == "basic" else 4
        cout = planes * expansion
        if kind == "basic":
            self.convs = nn.ModuleList([conv(cin, planes, 3, stride), conv(planes, planes, 3)])
        else:
            self.convs = nn.ModuleList([conv(cin, planes, 1), conv(planes, planes, 3, stride), conv(planes, cout, 1)])
        self.bns = nn.ModuleList([DualBN(2, c.out_channels, branches) for c in self.convs])
        self.down = None
        if stride != 1 or cin != cout:
            self.down = conv(cin, cout, 1, stride)
            self.down_bn = DualBN(2, cout, branches)

    def forward(self, x, branch, masks):
        out = x
        last = len(self.convs) - 1
        for i, (c, bn) in enumerate(zip(self.convs, self.bns)):
            out = bn(c(out, masks.get(c)), branch)
            if i < last:
                out = F.relu(out)
        identity = x if self.down is None else self.down_bn(self.down(x, masks.get(self.down)), branch)
        return F.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, arch, stem, width, branches):
        super().__init__()
        kind, layers = ARCHS[arch]
        base = round(64 * width)
        self.stem = stem
        self.conv1 = conv(3, base, 3) if stem == "cifar" else conv(3, base, 7, 2)
        self.bn1 = DualBN(2, base, branches)
        blocks, cin = [], base
        for stage, count in enumerate(layers):
            planes = base * 2 ** stage
            for i in range(count):
                blocks.append(Block(kind, cin, planes, 2 if i == 0 and stage > 0 else 1, branches))
                cin = planes * (1 if kind == "basic" else 4)
        self.blocks = nn.ModuleList(blocks)
        self.feature_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def convs(self):
        return [m for m in self.modules() if isinstance(m, MaskedConv)]

    def forward(self, x, branch=0, masks=None):
        masks = masks or {}
        h = F.relu(self.bn1(self.conv1(x, masks.get(self.conv1)), branch))
        if self.stem == "imagenet":
            h = F.max_pool2d(h, 3, 2, 1)
        for block in self.blocks:
            h = block(h, branch, masks)
        return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)


class Head(nn.Module):
    """SimCLR: Linear-BN-ReLU-Linear(no bias)-BN; SDCLR adds a hidden Linear(no bias)-BN-ReLU;
    linear (ETH): one Linear with bias, no BN."""

    def __init__(self, kind, dim, out_dim, branches):
        super().__init__()
        if kind == "linear":
            dims = [(dim, out_dim, True)]
        elif kind == "simclr":
            dims = [(dim, dim, True), (dim, out_dim, False)]
        else:
            dims = [(dim, dim, True), (dim, dim, False), (dim, out_dim, False)]
        self.fcs = nn.ModuleList([nn.Linear(a, b, bias=bias) for a, b, bias in dims])
        self.bns = nn.ModuleList([DualBN(1, b, branches) for _, b, _ in dims]) if kind != "linear" else None

    def forward(self, x, branch=0):
        last = len(self.fcs) - 1
        for i, fc in enumerate(self.fcs):
            x = fc(x)
            if self.bns is not None:
                x = self.bns[i](x, branch)
            if i < last:
                x = F.relu(x)
        return x


def similarities(z):
    unit = z / (z.norm(dim=1, keepdim=True) + 1e-10)
    return unit @ unit.t()


def contrastive_loss(z, args, mu):
    """NT-Xent (or the ETH weighted NT-Xent) with rows i and i+N paired, log-sum-exp form."""
    rows = z.shape[0]
    n = rows // 2
    s = similarities(z)
    eye = torch.eye(rows, dtype=torch.bool, device=z.device)
    partner = torch.arange(rows, device=z.device).roll(n)
    positive = torch.zeros_like(eye)
    positive[torch.arange(rows, device=z.device), partner] = True
    logits = s / args.temperature
    pos = logits[torch.arange(rows, device=z.device), partner]
    if args.loss == "ntxent":
        return (torch.logsumexp(logits.masked_fill(eye, -1e30), dim=1) - pos).mean()
    with torch.no_grad():
        alpha = torch.exp(-((s - mu) ** 2) / args.sigma ** 2)
        alpha = torch.where((s < args.lower_bound) | (s > args.upper_bound), alpha * 1e-3, alpha)
        negative = ~(eye | positive)
        alpha = alpha * negative
        rho = (rows - 2 + 1e-10) / (alpha.sum(dim=1) + 1e-10)
    weighted = logits + torch.log(alpha.clamp_min(1e-45) * rho[:, None])
    weighted = weighted.masked_fill(~negative, -1e30)
    denominator = torch.logsumexp(torch.cat([pos[:, None], weighted], dim=1), dim=1)
    return (denominator - pos).mean()


def peak_rss_bytes():
    """VmHWM of this process (getrusage's ru_maxrss would carry over the parent's peak across exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def device_memory_bytes():
    """GPU memory nvidia-smi reports for this process (CUDA context included), or None."""
    import os
    import subprocess
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.strip().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 2 and fields[0] == str(os.getpid()):
            return int(fields[1]) * 2 ** 20
    return None


def cpu_ticks():
    """Busy CPU ticks of the machine and of this process (Linux /proc)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    with open("/proc/self/stat") as own:
        after = own.read().rsplit(")", 1)[1].split()
    machine = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
    return machine, int(after[11]) + int(after[12])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18", choices=sorted(ARCHS))
    p.add_argument("--stem", default="cifar", choices=["cifar", "imagenet"])
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--method", default="simclr", choices=["simclr", "sdclr"])
    p.add_argument("--loss", default="ntxent", choices=["ntxent", "weighted"])
    p.add_argument("--head", default=None, choices=["simclr", "sdclr", "linear"],
                   help="projection head (default: the method's)")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--betas", default="0.9,0.999", help="Adam's betas")
    p.add_argument("--eps", type=float, default=1e-8, help="Adam's eps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--amp", action="store_true", help="autocast float16 with a GradScaler (CUDA)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--sigma", type=float, default=0.5)
    p.add_argument("--lower-bound", type=float, default=-1.0)
    p.add_argument("--upper-bound", type=float, default=1.0)
    p.add_argument("--mu", type=float, default=0.0)
    p.add_argument("--prune", type=float, default=0.9)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serve", action="store_true",
                   help="after the warm-up print a ready line, then run as many timed steps as each stdin "
                        "line asks (answering a done line each) until a line 'end'; --steps is ignored")
    p.add_argument("--phases", action="store_true",
                   help="also time forward only and forward+backward (no update), same step count")
    args = p.parse_args()
    if args.batch < 2 or args.steps < 1 or args.warmup < 0:
        p.error("--batch must be >= 2, --steps >= 1, --warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch.cuda.is_available() is False")

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    sdclr = args.method == "sdclr"
    branches = 2 if sdclr else 1
    encoder = ResNet(args.model, args.stem, args.width, branches)
    head = Head(args.head or args.method, encoder.feature_dim, 128, branches)
    model = nn.ModuleList([encoder, head]).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    if args.optimizer == "adam":
        betas = tuple(float(b) for b in args.betas.split(","))
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=betas, eps=args.eps,
                                     weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                    weight_decay=args.weight_decay)
    scaler = torch.cuda.amp.GradScaler(enabled=args.amp and args.device == "cuda")

    shape = (args.batch, 3, args.size, args.size)
    view1 = torch.randn(shape, device=device).contiguous(memory_format=memory_format)
    view2 = torch.randn(shape, device=device).contiguous(memory_format=memory_format)
    masks = {c: (torch.rand_like(c.weight) >= args.prune).float() for c in encoder.convs()} if sdclr else {}

    def forward():
        with torch.autocast(args.device, dtype=torch.float16 if args.device == "cuda" else torch.bfloat16,
                            enabled=args.amp):
            if sdclr:
                z = torch.cat([head(encoder(view1, 0), 0), head(encoder(view2, 1, masks), 1)])
            else:
                z = head(encoder(torch.cat([view1, view2])))
        return contrastive_loss(z.float(), args, args.mu)

    def step(phase="step"):
        """One training step; `phase` stops early: "forward" or "backward" (no update)."""
        optimizer.zero_grad(set_to_none=True)
        loss = forward()
        if phase == "forward":
            return loss
        scaler.scale(loss).backward()
        if phase == "backward":
            return loss
        scaler.step(optimizer)
        scaler.update()
        return loss

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()

    loss = None
    for _ in range(args.warmup):
        loss = step()
    sync()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, others = [], []
    device_peak = None

    def timed_step():
        nonlocal loss, device_peak
        machine0, self0 = cpu_ticks()
        start = time.perf_counter()
        loss = step()
        sync()
        times.append((time.perf_counter() - start) * 1000)
        if args.device == "cuda":
            used = device_memory_bytes()
            if used is not None:
                device_peak = max(device_peak or 0, used)
        machine1, self1 = cpu_ticks()
        # Cores other processes kept busy during the step (USER_HZ = 100).
        others.append(max(0.0, (machine1 - machine0 - (self1 - self0)) / 100 / (times[-1] / 1000)))

    if args.serve:
        # Interleaved with our step by the bench: slow drifts of the machine hit both sides alike.
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "end":
                break
            for _ in range(int(command)):
                timed_step()
            print(json.dumps({"done": int(command)}), flush=True)
        if not times:
            print("torch_step.py --serve: no timed steps were asked for", file=sys.stderr)
            sys.exit(1)
    else:
        for _ in range(args.steps):
            timed_step()
    other_cores = sum(o * t for o, t in zip(others, times)) / sum(times)
    loss = float(loss)
    if not math.isfinite(loss):
        print(f"torch_step.py: non-finite loss {loss}", file=sys.stderr)
        sys.exit(1)
    result = {
        "impl": "torch",
        "torch_version": torch.__version__,
        "python": sys.executable,
        "model": args.model, "stem": args.stem, "width": args.width, "method": args.method, "loss": args.loss,
        "batch": args.batch, "image_size": args.size, "steps": len(times), "warmup": args.warmup,
        "device": args.device, "threads": torch.get_num_threads(), "amp": args.amp,
        "channels_last": args.channels_last,
        "optimizer": args.optimizer, "head": args.head or args.method,
        "views_per_s": 2 * args.batch / (statistics.median(times) / 1000),
        "ms_per_step": statistics.median(times), "ms_per_step_mean": statistics.fmean(times),
        "peak_bytes": peak_rss_bytes(), "times_ms": times, "other_cores": other_cores,
        "other_cores_per_step": others,
        "loss_value": loss,
    }
    if args.phases:
        for phase, key in (("forward", "forward"), ("backward", "forward_backward")):
            phase_times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step(phase)
                sync()
                phase_times.append((time.perf_counter() - start) * 1000)
            result[f"{key}_ms_per_step"] = statistics.median(phase_times)
    if args.device == "cuda":
        # nvidia-smi's figure (CUDA context included), as the bench reads it for ours.
        result["peak_device_bytes"] = device_peak
        result["max_memory_allocated"] = torch.cuda.max_memory_allocated()
    print(f"torch {torch.__version__}: {result['views_per_s']:.1f} views/s, {result['ms_per_step']:.1f} ms/step",
          file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
