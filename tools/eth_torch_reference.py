#!/usr/bin/python3
"""An independent PyTorch pipeline for the original ETH configs (issue 13): the second opinion
on our toolkit's numbers. Written from the original repository
(joelneeser/curriculum-contrastive-learning: src/networks/ResNet.py, src/models/*.py,
src/losses/*.py, src/data/*.py), not from our TypeScript code.

  - data: the CIFAR-10/100 binary batch files (official layout) read into PIL images;
  - training: torchvision transforms on PIL images exactly as the ETH YAML lists them (each
    `prob` wraps a RandomApply), then ToTensor + the ETH CIFAR normalization; two views per image
    interleaved (rows 2k, 2k+1 are a pair); DataLoader(shuffle=True, batch_size, last partial batch
    kept); torchvision's resnet50 (the ETH network is torchvision's code, ImageNet stem, features =
    mean over H, W of layer4) + Linear(2048, projection_dimension); the ETH NTXent /
    WeightedNTXent (raw exponentials, as the original) and torch.optim.Adam with the config's
    lr and weight_decay (L2); μ updated at every epoch end;
  - evaluation (src/models/classification.py): eval-mode features of ToTensor + Normalize images,
    a stratified split as sklearn's train_test_split(stratify=labels, random_state=seed) makes it
    (StratifiedShuffleSplit reimplemented below with numpy's RandomState, since sklearn is not
    installed), Linear(2048, classes) with Adam (L2 weight decay from torch.logspace) for
    max_epochs on shuffled batches, the best validation accuracy picks the weight decay,
    retraining on all train features, test accuracy.

Usage (Debian python3-torch 1.13 + python3-torchvision 0.14):
  /usr/bin/python3 tools/eth_torch_reference.py config/eth/experiment_27.yaml \\
      --data-dir /tmp/cifar10-full/cifar-10-batches-bin --epochs 2 --seed 42 --threads 2 \\
      --out /tmp/i13/torch_e27_s42.json [--save-features F.safetensors] [--save-checkpoint C.pt]
  --epochs 0 evaluates the randomly initialised encoder. --probe-features F.safetensors skips
  the encoder and runs only the linear protocol on saved features (train_features, train_labels,
  test_features, test_labels), e.g. features our toolkit wrote.

Other tools (tools/eth_parity.py) import this file for the isolation checks.
"""
import argparse
import hashlib
import json
import os
import random
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import yaml
from PIL import Image
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision import transforms as T

CIFAR_STATS = {
    "Cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "Cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
CIFAR_FILES = {
    "Cifar10": (["data_batch_%d.bin" % k for k in range(1, 6)], ["test_batch.bin"], 1, 10),
    "Cifar100": (["train.bin"], ["test.bin"], 2, 100),
}


# ---------------------------------------------------------------------------------------------
# data


def read_cifar_bin(data_dir, name, split):
    """uint8 images [N, 32, 32, 3] (HWC, as PIL wants them), int64 labels [N], and the sha256 of
    each file read, from the official binary layout."""
    train_files, test_files, label_bytes, _ = CIFAR_FILES[name]
    files = train_files if split == "train" else test_files
    # The batches present, in order (the bundled subset has data_batch_1 only), as our loader reads.
    present = []
    for f in files:
        if not os.path.exists(os.path.join(data_dir, f)):
            break
        present.append(f)
    if not present:
        raise FileNotFoundError("%s: no %s file of %s" % (data_dir, files[0], name))
    images, labels, sums = [], [], {}
    for f in present:
        path = os.path.join(data_dir, f)
        raw = open(path, "rb").read()
        sums[f] = hashlib.sha256(raw).hexdigest()
        rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, label_bytes + 3072)
        labels.append(rec[:, label_bytes - 1].astype(np.int64))  # CIFAR-100: the fine label
        images.append(rec[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), sums


def data_fingerprint(images_hwc, labels):
    """sha256 over the decoded images (uint8, CHW per image, in order) followed by the labels as
    int32 little-endian: the fingerprint our toolkit logs (src/data/provenance.ts)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images_hwc.transpose(0, 3, 1, 2), dtype=np.uint8).tobytes())
    h.update(np.asarray(labels, dtype="<i4").tobytes())
    return h.hexdigest()


def provenance(data_dir, name):
    """Checksums of the data files and fingerprints of the decoded train/test sets."""
    out = {"data_dir": os.path.abspath(data_dir), "files": {}}
    for split in ("train", "test"):
        images, labels, sums = read_cifar_bin(data_dir, name, split)
        out["files"].update(sums)
        out[split + "_fingerprint"] = data_fingerprint(images, labels)
        out[split + "_count"] = int(len(labels))
    return out


def parse_params(config):
    """The original's transformations.parse_config_dict: strings "a,b" become tuples of numbers,
    `prob` is split off."""
    cleaned, prob = {}, None
    for key, value in config.items():
        if key == "prob":
            prob = value
        elif isinstance(value, str):
            cleaned[key] = tuple(int(s) if s.strip().lstrip("-").isdigit() else float(s) for s in value.split(","))
        else:
            cleaned[key] = value
    return cleaned, prob


TRANSFORMS = {
    "RandomResizedCrop": T.RandomResizedCrop,
    "RandomHorizontalFlip": T.RandomHorizontalFlip,
    "ColorJitter": T.ColorJitter,
    "RandomGrayscale": T.RandomGrayscale,
    "GaussianBlur": T.GaussianBlur,
}


def train_transform(eth_config):
    """The ETH pretraining transform: the YAML's transforms in order, ToTensor, Normalize."""
    dataset = eth_config["pretraining"]["dataset"]
    steps = []
    for name, params in dataset["transforms"].items():
        kwargs, prob = parse_params(params)
        t = TRANSFORMS[name](**kwargs)
        steps.append(t if prob is None else T.RandomApply([t], p=prob))
    mean, std = CIFAR_STATS[dataset["name"]]
    return T.Compose(steps + [T.ToTensor(), T.Normalize(mean, std)])


def eval_transform(name):
    mean, std = CIFAR_STATS[name]
    return T.Compose([T.ToTensor(), T.Normalize(mean, std)])


class ContrastivePairs(Dataset):
    """Two independent augmentations of image i, stacked [2, 3, H, W] (the original's
    ContrastiveDataset); collate() interleaves them into [2B, 3, H, W]."""

    def __init__(self, images_hwc, transform):
        self.images = images_hwc
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])
        return torch.stack((self.transform(img), self.transform(img)), dim=0)


def collate(batch):
    return torch.cat(batch, dim=0)


def eval_images(images_hwc, name):
    """ToTensor + Normalize of every image, as one float32 tensor [N, 3, H, W]."""
    mean, std = CIFAR_STATS[name]
    x = torch.from_numpy(images_hwc).permute(0, 3, 1, 2).float().div_(255)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


# ---------------------------------------------------------------------------------------------
# model and loss


class EthEncoder(nn.Module):
    """torchvision's resnet50 (the original's src/networks/ResNet.py is torchvision's code with
    avgpool and fc removed and the output torch.mean(x, dim=[2, 3])) and the projection."""

    def __init__(self, projection_dim):
        super().__init__()
        self.encoder = torchvision.models.resnet50()
        self.encoder.fc = nn.Identity()  # avgpool over 1x1 (32x32 input) = mean over H, W
        self.projection = nn.Linear(2048, projection_dim) if projection_dim else None

    def features(self, x):
        return self.encoder(x)

    def forward(self, x):
        h = self.encoder(x)
        return self.projection(h) if self.projection is not None else h


def cosine_similarity(z):
    norms = torch.linalg.vector_norm(z.float(), dim=1, ord=2)
    zn = z / (norms.unsqueeze(1) + 1e-10)
    return zn @ zn.T


def nt_xent(z, temperature):
    """The original's NTXent on interleaved pairs."""
    exp_sim = torch.exp(cosine_similarity(z) / temperature)
    den = exp_sim.sum(1) - torch.diagonal(exp_sim)
    p1 = torch.diagonal(exp_sim, offset=1)[::2]
    p2 = torch.diagonal(exp_sim, offset=-1)[::2]
    return ((-torch.log(p1 / den[::2])).mean() + (-torch.log(p2 / den[1::2])).mean()) / 2


def weighted_nt_xent(z, temperature, mu, sigma, b_l, b_u, normalization):
    """The original's WeightedNTXent (GaussianWeight; weights without gradient) on interleaved pairs."""
    eps = 1e-10
    sim = cosine_similarity(z)
    with torch.no_grad():
        w = torch.exp(-(sim - mu) ** 2 / sigma ** 2)
        w[sim < b_l] = 1e-3 * w[sim < b_l]
        w[sim > b_u] = 1e-3 * w[sim > b_u]
    exp_sim = torch.exp(sim / temperature)
    wexp = w * exp_sim
    e1, e2 = torch.diagonal(exp_sim, offset=1)[::2], torch.diagonal(exp_sim, offset=-1)[::2]
    we1, we2 = torch.diagonal(wexp, offset=1)[::2], torch.diagonal(wexp, offset=-1)[::2]
    inter = wexp.sum(1) - torch.diagonal(wexp)
    if normalization == "negatives_constant_total_weight":
        sw = w.sum(1) - torch.diagonal(w)
        n1 = (sw[::2] - torch.diagonal(w, offset=1)[::2] + eps) / (w.shape[0] - 2 + eps)
        n2 = (sw[1::2] - torch.diagonal(w, offset=-1)[::2] + eps) / (w.shape[0] - 2 + eps)
        d1 = (inter[::2] - we1) / n1 + e1
        d2 = (inter[1::2] - we2) / n2 + e2
    elif normalization == "None":
        d1 = inter[::2] - we1 + e1
        d2 = inter[1::2] - we2 + e2
    else:
        raise ValueError("weight_normalization %r is not supported" % normalization)
    return ((-torch.log(e1 / d1)).mean() + (-torch.log(e2 / d2)).mean()) / 2


class MuSchedule:
    """The original's time-varying μ (src/losses/weights.py), the deterministic kinds and the
    random ones from Python's `random` (seeded by the caller)."""

    def __init__(self, mean, config):
        self.kind = mean if isinstance(mean, str) else "Const"
        self.c = config or {}
        self.count = 0
        self.exp = 1.0
        if self.kind == "Const":
            self.value = float(mean)
        elif self.kind in ("LinearParam", "ExponentialParam"):
            self.value = self.c["begin"]
        elif self.kind in ("RandomParam", "RandomThenConst", "RandomParamEveryIter"):
            self.value = self._draw()
        else:
            raise ValueError("mean schedule %r is not supported" % mean)

    def _draw(self):
        return (self.c["begin"] - self.c["end"]) * random.random() + self.c["end"]

    def current(self):
        if self.kind == "RandomParamEveryIter":
            v = self.value
            self.value = self._draw()
            return v
        return self.value

    def step(self):
        k = self.kind
        if k == "LinearParam":
            if self.count < self.c["steps"]:
                self.value += (self.c["end"] - self.c["begin"]) / self.c["steps"]
            self.count += 1
        elif k == "ExponentialParam":
            self.exp *= self.c["factor"]
            self.value = self.c["end"] + (self.c["begin"] - self.c["end"]) * self.exp
        elif k in ("RandomParam", "RandomParamEveryIter"):
            self.value = self._draw()
        elif k == "RandomThenConst":
            if self.count < self.c["steps"]:
                self.value = self._draw()
                self.count += 1
            else:
                self.value = self.c["const_value"]


class EthLoss:
    """loss(z) for the config's loss; step() at every epoch end."""

    def __init__(self, loss_section):
        self.name = loss_section["name"]
        c = loss_section["loss_config"]
        self.temperature = c["temperature"]
        if self.name == "WeightedNTXent":
            w = c["weight_config"]
            self.sigma, self.b_l, self.b_u = w["sigma"], w["b_l"], w["b_u"]
            self.normalization = c["weight_normalization"]
            self.mu = MuSchedule(w["mean"], w.get("mean_config"))
        elif self.name != "NTXent":
            raise ValueError("loss %r is not supported" % self.name)

    def __call__(self, z):
        if self.name == "NTXent":
            return nt_xent(z, self.temperature)
        return weighted_nt_xent(z, self.temperature, self.mu.current(), self.sigma, self.b_l,
                                self.b_u, self.normalization)

    def mu_value(self):
        return None if self.name == "NTXent" else self.mu.value

    def step(self):
        if self.name == "WeightedNTXent":
            self.mu.step()


def optimizer_for(eth_config, params):
    opt = eth_config["pretraining"]["optimizer"]
    if opt["name"] != "Adam":
        raise ValueError("optimizer %r is not supported" % opt["name"])
    kwargs, _ = parse_params(opt["config"])
    return torch.optim.Adam(params, **kwargs)


# ---------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def extract_features(model, x, batch_size=1024):
    """Eval-mode encoder features of a normalized image tensor [N, 3, H, W] (the original's
    DataLoader(batch_size=1024) over ToTensor + Normalize)."""
    model.eval()
    out = [model.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(out)


def _approximate_mode(class_counts, n_draws, rng):
    """sklearn.utils.extmath._approximate_mode."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        values = np.sort(np.unique(remainder))[::-1]
        for value in values:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def stratified_split(labels, test_size, seed):
    """(train, val) index arrays as sklearn's train_test_split(range(n), labels, stratify=labels,
    test_size=test_size, random_state=seed) returns them (StratifiedShuffleSplit, one split)."""
    labels = np.asarray(labels)
    n = len(labels)
    n_test = int(np.ceil(test_size * n))
    n_train = int(np.floor((1 - test_size) * n))
    classes, y_indices = np.unique(labels, return_inverse=True)
    class_counts = np.bincount(y_indices)
    class_indices = np.split(np.argsort(y_indices, kind="mergesort"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train, test = [], []
    for i in range(len(classes)):
        perm = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(perm[:n_i[i]])
        test.extend(perm[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def fit_linear(x, y, classes, weight_decay, epochs, batch_size, lr, generator):
    """The ETH Classifier: nn.Linear (torch's default init), CrossEntropyLoss, Adam(lr, L2
    weight_decay), shuffled batches with the last partial one kept. The batches are those of
    DataLoader(TensorDataset(x, y), batch_size, shuffle=True, generator=generator) (its
    RandomSampler draws torch.randperm(n, generator=generator) every epoch), sliced directly
    instead of gathered sample by sample. Returns the layer and the mean loss of the last epoch."""
    layer = nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=float(weight_decay))
    n = len(y)
    last = float("nan")
    for _ in range(epochs):
        total = 0.0
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(layer(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(yb)
        last = total / n
    return layer, last


@torch.no_grad()
def accuracy(layer, x, y):
    return float((layer(x).argmax(1) == y).double().mean())


def linear_protocol(train_x, train_y, test_x, test_y, testing, seed, classes, log=print):
    """src/models/classification.py compute_model_score on given features."""
    tune = testing["param_tuning"]
    decays = torch.logspace(tune["log_min"], tune["log_max"], tune["n_steps"])
    tr, va = stratified_split(train_y.numpy(), testing["dataset"]["val_percentage"], seed)
    tr, va = torch.from_numpy(np.asarray(tr)), torch.from_numpy(np.asarray(va))
    epochs, bs, lr = testing["max_epochs"], testing["batch_size"], testing["optimizer"]["lr"]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    search = []
    for wd in decays:
        t0 = time.time()
        layer, loss = fit_linear(train_x[tr], train_y[tr], classes, wd, epochs, bs, lr, gen)
        acc = accuracy(layer, train_x[va], train_y[va])
        search.append({"weight_decay": float(wd), "val_accuracy": acc, "train_loss": loss})
        log("  probe wd %.3g: val %.4f (loss %.4f, %.0f s)" % (float(wd), acc, loss, time.time() - t0))
    best = int(torch.argmax(torch.tensor([s["val_accuracy"] for s in search])))
    layer, loss = fit_linear(train_x, train_y, classes, decays[best], epochs, bs, lr, gen)
    test = accuracy(layer, test_x, test_y)
    log("  probe final wd %.3g: test %.4f" % (float(decays[best]), test))
    return {"search": search, "weight_decay": float(decays[best]), "test_accuracy": test,
            "final_train_loss": loss, "split": {"train": len(tr), "val": len(va)}}


# ---------------------------------------------------------------------------------------------
# safetensors (for features and for our checkpoints)


def read_safetensors(path):
    """{name: numpy array} and the metadata of a safetensors file (F32, F64, I32, I64, U8)."""
    codes = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "u1"}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=codes[h["dtype"]]).reshape(h["shape"])
    return out, meta


def write_safetensors(path, items, metadata=None):
    """Writes {name: numpy array} (float32, int32, int64, uint8) with string metadata."""
    codes = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i4"): "I32",
             np.dtype("<i8"): "I64", np.dtype("u1"): "U8"}
    header = {"__metadata__": {k: str(v) for k, v in (metadata or {}).items()}}
    blobs, offset = [], 0
    for name, arr in items.items():
        arr = np.ascontiguousarray(arr)
        raw = arr.tobytes()
        header[name] = {"dtype": codes[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_features(path):
    t, meta = read_safetensors(path)
    as_t = lambda a, dt: torch.from_numpy(np.array(a, dtype=dt))
    return (as_t(t["train_features"], np.float32), as_t(t["train_labels"], np.int64),
            as_t(t["test_features"], np.float32), as_t(t["test_labels"], np.int64), meta)


def save_features(path, train_x, train_y, test_x, test_y, meta):
    write_safetensors(path, {
        "train_features": train_x.numpy().astype("<f4"), "train_labels": train_y.numpy().astype("<i4"),
        "test_features": test_x.numpy().astype("<f4"), "test_labels": test_y.numpy().astype("<i4"),
    }, meta)


def load_our_checkpoint(model, path):
    """Loads our toolkit's checkpoint (safetensors; names `encoder.<torchvision name>`,
    `head.fc1.weight/bias`) into an EthEncoder; returns the names it did not use."""
    tensors, _ = read_safetensors(path)
    state = model.state_dict()
    used = set()
    for name in state:
        if name.endswith("num_batches_tracked"):
            continue
        ours = name.replace("projection.", "head.fc1.") if name.startswith("projection.") else name
        if ours not in tensors:
            raise KeyError("%s: no tensor %s for torch's %s" % (path, ours, name))
        arr = tensors[ours]
        if tuple(arr.shape) != tuple(state[name].shape):
            raise ValueError("%s: %s is %s, torch's %s is %s" % (path, ours, arr.shape, name, tuple(state[name].shape)))
        state[name].copy_(torch.from_numpy(np.array(arr, dtype=np.float32)))
        used.add(ours)
    return sorted(set(tensors) - used)


def export_our_names(model):
    """The model's parameters and BN buffers under our toolkit's names, as float32 numpy."""
    out = {}
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        ours = name.replace("projection.", "head.fc1.") if name.startswith("projection.") else name
        out[ours] = t.detach().cpu().numpy().astype("<f4")
    return out


# ---------------------------------------------------------------------------------------------
# the pipeline


def set_seed(seed):
    """pl.seed_everything(seed): Python, numpy and torch generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_config(path):
    with open(path) as f:
        return yaml.safe_load(f)


def pretrain(model, eth, images_hwc, epochs, log=print, workers=0, limit_steps=None):
    """The ETH pretraining loop; returns the mean step loss of every epoch (and the
    batch-size-weighted mean Lightning would log)."""
    pre = eth["pretraining"]
    loss_fn = EthLoss(pre["loss"])
    opt = optimizer_for(eth, model.parameters())
    loader = DataLoader(ContrastivePairs(images_hwc, train_transform(eth)),
                        batch_size=pre["batch_size"], shuffle=True, num_workers=workers,
                        collate_fn=collate, drop_last=False)
    history = []
    for epoch in range(epochs):
        model.train()
        t0, losses, sizes = time.time(), [], []
        mu = loss_fn.mu_value()
        for step, views in enumerate(loader):
            loss = loss_fn(model(views))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
            sizes.append(len(views))
            if step % 20 == 0:
                log("epoch %d step %d/%d loss %.4f (%.1f s/step)" % (
                    epoch + 1, step, len(loader), np.mean(losses), (time.time() - t0) / (step + 1)))
            if limit_steps is not None and step + 1 >= limit_steps:
                break
        loss_fn.step()
        history.append({"epoch": epoch, "loss": float(np.mean(losses)),
                        "loss_weighted": float(np.average(losses, weights=sizes)),
                        "steps": len(losses), "mu": mu, "seconds": time.time() - t0})
        log("epoch %d: loss %.4f, %d steps, %.0f s" % (epoch + 1, history[-1]["loss"], len(losses),
                                                       history[-1]["seconds"]))
    return history


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="an ETH-format YAML config (config/eth/experiment_N.yaml)")
    ap.add_argument("--data-dir", required=True, help="folder with the CIFAR binary batch files")
    ap.add_argument("--epochs", type=int, default=None, help="pretraining epochs (0: random init)")
    ap.add_argument("--seed", type=int, default=None, help="default: the config's seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for augmentation")
    ap.add_argument("--out", help="JSON result file")
    ap.add_argument("--save-features", help="write the eval features (safetensors)")
    ap.add_argument("--save-checkpoint", help="write the trained weights under our names (safetensors)")
    ap.add_argument("--load-checkpoint", help="start from our toolkit's checkpoint (safetensors)")
    ap.add_argument("--probe-features", help="only run the linear protocol on these saved features")
    ap.add_argument("--no-probe", action="store_true", help="stop after the features")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    eth = load_config(args.config)
    seed = eth["seed"] if args.seed is None else args.seed
    name = eth["pretraining"]["dataset"]["name"]
    classes = CIFAR_FILES[name][3]
    epochs = eth["pretraining"]["max_epochs"] if args.epochs is None else args.epochs
    log = lambda s: print(s, file=sys.stderr, flush=True)
    result = {"tool": "tools/eth_torch_reference.py", "config": args.config, "experiment": eth["experiment"],
              "seed": seed, "epochs": epochs, "threads": args.threads,
              "torch": torch.__version__, "torchvision": torchvision.__version__,
              "data": provenance(args.data_dir, name)}
    t_start = time.time()
    set_seed(seed)

    if args.probe_features:
        train_x, train_y, test_x, test_y, meta = load_features(args.probe_features)
        result["features"] = {"path": args.probe_features, "meta": meta}
    else:
        model = EthEncoder(eth["pretraining"]["projection"]["projection_dimension"]
                           if eth["pretraining"]["projection"]["use_projection"] else None)
        if args.load_checkpoint:
            unused = load_our_checkpoint(model, args.load_checkpoint)
            result["loaded_checkpoint"] = {"path": args.load_checkpoint, "unused": len(unused)}
        train_hwc, train_y_np, _ = read_cifar_bin(args.data_dir, name, "train")
        test_hwc, test_y_np, _ = read_cifar_bin(args.data_dir, name, "test")
        result["history"] = pretrain(model, eth, train_hwc, epochs, log, args.workers)
        result["average_training_loss_per_epoch"] = [h["loss"] for h in result["history"]]
        if args.save_checkpoint:
            write_safetensors(args.save_checkpoint, export_our_names(model),
                              {"tool": "eth_torch_reference", "epochs": epochs, "seed": seed})
        t0 = time.time()
        train_x = extract_features(model, eval_images(train_hwc, name))
        test_x = extract_features(model, eval_images(test_hwc, name))
        train_y, test_y = torch.from_numpy(train_y_np), torch.from_numpy(test_y_np)
        result["feature_seconds"] = time.time() - t0
        result["feature_stats"] = feature_stats(train_x)
        log("features: %.0f s, %s" % (result["feature_seconds"], result["feature_stats"]))
        if args.save_features:
            save_features(args.save_features, train_x, train_y, test_x, test_y,
                          {"source": "torch", "config": args.config, "epochs": epochs, "seed": seed,
                           "train_fingerprint": result["data"]["train_fingerprint"]})
    if not args.no_probe:
        probe = linear_protocol(train_x, train_y, test_x, test_y, eth["testing"], seed, classes, log)
        result["probe"] = probe
        result["model_scores"] = [probe["test_accuracy"]]
    result["seconds"] = time.time() - t_start
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps({k: result[k] for k in ("experiment", "seed", "epochs", "average_training_loss_per_epoch",
                                            "model_scores") if k in result}))


def feature_stats(x):
    """Scale of a feature matrix: mean, mean row norm, fraction of zeros, mean per-dim std."""
    x = x.double()
    return {"mean": float(x.mean()), "row_norm": float(x.norm(dim=1).mean()),
            "zeros": float((x == 0).double().mean()), "dim_std": float(x.std(0).mean())}


if __name__ == "__main__":
    main()
