#!/usr/bin/python3
"""The torch side of the ETH isolation checks of issue 13 (our side: tools/eth_parity.ts).
Each subcommand reads what our tool wrote and prints one JSON line of figures.

  encoder FEATURES.safetensors --data-dir D
      Loads the weights beside our features (FEATURES.weights.safetensors: every parameter and BN
      running statistic, by name) into torchvision's resnet50 and compares its eval-mode features
      of the same images (ToTensor + ETH normalize) with ours: max relative error
      max|ours - torch| / max|torch| and per-row relative L2 error.
  trajectory DIR CONFIG [--tolerance-only]
      Replays our dumped training steps (DIR/initial.safetensors, DIR/step_K.safetensors with the
      two views, DIR/trajectory.json) in torch from the same initial weights: the config's loss
      (pairs across the two halves, BN over all 2N views, as our graph), Adam; per-step loss
      difference and the final weights' and BN statistics' relative differences against
      DIR/final.safetensors.
  augment OURS.safetensors CONFIG --data-dir D [--draws R]
      torchvision's views and parameters of the same images (R draws each, the ETH transform on
      PIL images) against ours: per-channel mean/std of the views, crop area fraction and aspect
      ratio, flip/jitter/grayscale/blur rates and jitter factors, with two-sample
      Kolmogorov-Smirnov tests (scipy) for the continuous ones and z-tests for the rates.
  probe OURS.json TORCH.json
      Compares two probe results on the same features (val accuracy per weight decay, test).
  loader CONFIG --count N
      torch's DataLoader over N images with the config's batch size: steps per epoch, the last
      batch's size, and whether every image appears once per epoch (our side: EpochLoader).
"""
import argparse
import json
import math
import os
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as TF

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eth_torch_reference as ref  # noqa: E402


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a - b).max())


def model_from(path, projection_dim=128):
    model = ref.EthEncoder(projection_dim)
    unused = ref.load_our_checkpoint(model, path)
    return model, unused


def cmd_encoder(args):
    feats, meta = ref.read_safetensors(args.features)
    weights = args.features.replace(".safetensors", "") + ".weights.safetensors"
    model, unused = model_from(weights)
    out = {"features": args.features, "unused_tensors": len(unused)}
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    out["bn_running_var_mean"] = float(np.mean([float(m.running_var.mean()) for m in bn]))
    for split in ("train", "test"):
        ours = np.asarray(feats[split + "_features"], dtype=np.float32)
        n = len(ours)
        hwc, labels, _ = ref.read_cifar_bin(args.data_dir, "Cifar10", split)
        torch_feats = ref.extract_features(model, ref.eval_images(hwc[:n], "Cifar10"), 256).numpy()
        row = np.linalg.norm(ours - torch_feats, axis=1) / np.maximum(np.linalg.norm(torch_feats, axis=1), 1e-30)
        out[split] = {"images": n, "max_rel": rel(ours, torch_feats), "row_rel_l2_max": float(row.max()),
                      "row_rel_l2_mean": float(row.mean()),
                      "labels_equal": bool((np.asarray(feats[split + "_labels"]) == labels[:n]).all()),
                      "ours_row_norm": float(np.linalg.norm(ours, axis=1).mean()),
                      "torch_row_norm": float(np.linalg.norm(torch_feats, axis=1).mean())}
    print(json.dumps(out))


def halves_loss(eth, z, mu):
    """The config's ETH loss on our layout: rows 0..N-1 view 1, N..2N-1 view 2 (interleaved for
    the original's pairing)."""
    n = z.shape[0] // 2
    inter = torch.stack((z[:n], z[n:]), dim=1).reshape(2 * n, -1)
    loss = ref.EthLoss(eth["pretraining"]["loss"])
    if loss.name == "NTXent":
        return ref.nt_xent(inter, loss.temperature)
    return ref.weighted_nt_xent(inter, loss.temperature, mu, loss.sigma, loss.b_l, loss.b_u, loss.normalization)


def replay(args, eth, info, dtype):
    """Our dumped steps replayed in torch at `dtype`: per-step losses and the final state."""
    model, _ = model_from(os.path.join(args.dir, "initial.safetensors"))
    model.to(dtype)
    kwargs, _ = ref.parse_params(eth["pretraining"]["optimizer"]["config"])
    opt = torch.optim.Adam(model.parameters(), **kwargs)
    model.train()
    m, s = ref.CIFAR_STATS[eth["pretraining"]["dataset"]["name"]]
    mean, std = torch.tensor(m).view(1, 3, 1, 1), torch.tensor(s).view(1, 3, 1, 1)
    losses = []
    for k in range(info["steps"]):
        step, meta = ref.read_safetensors(os.path.join(args.dir, "step_%d.safetensors" % k))
        views = torch.from_numpy(np.concatenate([step["view1"], step["view2"]]).astype(np.float32))
        views = ((views - mean) / std).to(dtype)  # our views are in [0, 1]: our model normalizes inside
        loss = halves_loss(eth, model(views), float(json.loads(meta["mu"])))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        print("%s step %d: ours %.6f torch %.6f" % (dtype, k, info["losses"][k], float(loss)), file=sys.stderr)
    return losses, {k: v.astype(np.float64) for k, v in ref.export_our_names(model).items()}


def cmd_trajectory(args):
    """Ours against torch float64 from the same start, with torch float32 against torch float64
    as the yardstick of float32 rounding (Adam's first steps are sign(g)-like, so a gradient
    element near zero flips its step either way)."""
    eth = ref.load_config(args.config)
    info = json.load(open(os.path.join(args.dir, "trajectory.json")))
    initial, _ = ref.read_safetensors(os.path.join(args.dir, "initial.safetensors"))
    final, _ = ref.read_safetensors(os.path.join(args.dir, "final.safetensors"))
    ours = {k: np.asarray(v, np.float64) for k, v in final.items()}
    l32, w32 = replay(args, eth, info, torch.float32)
    l64, w64 = replay(args, eth, info, torch.float64) if not args.no_double else (None, None)
    ref_l, ref_w = (l64, w64) if w64 is not None else (l32, w32)

    def distances(w):
        """Per kind: sum over tensors of ||w - ref||^2 over sum of ||ref - initial||^2 (rel. to
        the distance travelled) and over sum of ||ref||^2, as square roots."""
        acc = {}
        for name, r in ref_w.items():
            kind = "running_mean" if name.endswith("running_mean") else "running_var" if name.endswith("running_var") else "param"
            a = acc.setdefault(kind, [0.0, 0.0, 0.0])
            a[0] += float(((w[name] - r) ** 2).sum())
            a[1] += float(((r - np.asarray(initial[name], np.float64)) ** 2).sum())
            a[2] += float((r ** 2).sum())
        return {k: {"over_update": math.sqrt(a[0] / max(a[1], 1e-300)), "over_norm": math.sqrt(a[0] / max(a[2], 1e-300))}
                for k, a in acc.items()}

    rows = [{"step": k, "ours": info["losses"][k], "torch32": l32[k], **({"torch64": l64[k]} if l64 else {})}
            for k in range(info["steps"])]
    out = {"steps": info["steps"], "batch": info["batch"], "reference": "torch64" if w64 is not None else "torch32",
           "loss_max_abs_diff": {"ours": max(abs(r["ours"] - x) for r, x in zip(rows, ref_l)),
                                 "torch32": max(abs(a - b) for a, b in zip(l32, ref_l))},
           "final_state_distance": {"ours": distances(ours), **({"torch32": distances(w32)} if w64 is not None else {})},
           "losses": rows}
    if args.out:
        json.dump(out, open(args.out, "w"), indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "losses"}))


def ks_2samp(a, b):
    from scipy.stats import ks_2samp as ks
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    r = ks(a, b)
    return {"ours_mean": float(a.mean()), "torch_mean": float(b.mean()), "ks": float(r.statistic), "p": float(r.pvalue),
            "n": [int(len(a)), int(len(b))]}


def rate_test(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    pa, pb = a.mean(), b.mean()
    p = (a.sum() + b.sum()) / (len(a) + len(b))
    se = math.sqrt(max(p * (1 - p) * (1 / len(a) + 1 / len(b)), 1e-300))
    z = (pa - pb) / se
    return {"ours": float(pa), "torch": float(pb), "z": float(z), "p": float(math.erfc(abs(z) / math.sqrt(2)))}


class Recorder:
    """Draws the ETH transform's parameters exactly as torchvision draws them (same calls, same
    order, torch's global generator), applying each on the PIL image, and records them."""

    def __init__(self, eth):
        self.eth = eth
        tr = eth["pretraining"]["dataset"]["transforms"]
        self.crop = ref.parse_params(tr["RandomResizedCrop"])[0]
        self.flip_p = ref.parse_params(tr["RandomHorizontalFlip"])[0]["p"]
        cj, self.jitter_p = ref.parse_params(tr["ColorJitter"])
        self.jitter = T.ColorJitter(**cj)
        self.gray_p = ref.parse_params(tr["RandomGrayscale"])[0]["p"]
        blur, self.blur_p = ref.parse_params(tr["GaussianBlur"])
        self.blur = T.GaussianBlur(**blur)
        mean, std = ref.CIFAR_STATS[eth["pretraining"]["dataset"]["name"]]
        self.norm = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
        self.keys = list(tr.keys())
        if self.keys != ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale", "GaussianBlur"]:
            raise ValueError("augment check expects the ETH transform order, got %s" % self.keys)

    def __call__(self, img):
        rec = {}
        size = tuple(self.crop["size"])
        i, j, h, w = T.RandomResizedCrop.get_params(img, list(self.crop["scale"]), list(self.crop["ratio"]))
        img = TF.resized_crop(img, i, j, h, w, list(size), T.InterpolationMode.BILINEAR)
        rec.update(crop_top=i, crop_left=j, crop_height=h, crop_width=w)
        flip = torch.rand(1) < self.flip_p
        if flip:
            img = TF.hflip(img)
        rec["flip"] = float(flip)
        # RandomApply: one torch.rand(1) then the transform's own draws
        applied = not (self.jitter_p < torch.rand(1))
        rec["jitter"] = float(applied)
        if applied:
            fn_idx, b, c, s, hue = T.ColorJitter.get_params(self.jitter.brightness, self.jitter.contrast,
                                                           self.jitter.saturation, self.jitter.hue)
            for fid in fn_idx:
                if fid == 0 and b is not None:
                    img = TF.adjust_brightness(img, b)
                elif fid == 1 and c is not None:
                    img = TF.adjust_contrast(img, c)
                elif fid == 2 and s is not None:
                    img = TF.adjust_saturation(img, s)
                elif fid == 3 and hue is not None:
                    img = TF.adjust_hue(img, hue)
            rec.update(brightness=b, contrast=c, saturation=s, hue=hue)
        gray = torch.rand(1) < self.gray_p
        if gray:
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        rec["grayscale"] = float(gray)
        applied = not (self.blur_p < torch.rand(1))
        rec["blur"] = float(applied)
        if applied:
            sigma = T.GaussianBlur.get_params(self.blur.sigma[0], self.blur.sigma[1])
            img = TF.gaussian_blur(img, self.blur.kernel_size, [sigma, sigma])
            rec["sigma"] = sigma
        return self.norm(img), rec


def cmd_augment(args):
    eth = ref.load_config(args.config)
    ours, meta = ref.read_safetensors(args.ours)
    columns = json.loads(meta["columns"])
    n = int(json.loads(meta["images"]))
    draws = args.draws or int(json.loads(meta["draws"]))
    hwc, _, _ = ref.read_cifar_bin(args.data_dir, "Cifar10", "train")
    torch.manual_seed(args.seed)
    rec = Recorder(eth)
    # Check that the recorder is torchvision's transform: same generator state, same output.
    state = torch.get_rng_state()
    a, _ = rec(Image.fromarray(hwc[0]))
    torch.set_rng_state(state)
    b = ref.train_transform(eth)(Image.fromarray(hwc[0]))
    assert torch.equal(a, b), "the recorder's transform differs from torchvision's Compose"
    views, records = [], []
    for _ in range(draws):
        for i in range(n):
            v, r = rec(Image.fromarray(hwc[i]))
            views.append(v.numpy())
            records.append(r)
    tv = np.stack(views)  # [draws*n, 3, H, W]
    ov = np.asarray(ours["views"], np.float32).reshape(-1, 3, tv.shape[2], tv.shape[3])
    # our views end at [0, 1] (the model normalizes): normalize them the same way for comparison
    mean, std = ref.CIFAR_STATS[eth["pretraining"]["dataset"]["name"]]
    ov = (ov - np.array(mean, np.float32).reshape(1, 3, 1, 1)) / np.array(std, np.float32).reshape(1, 3, 1, 1)
    table = np.asarray(ours["draws"], np.float64).reshape(-1, len(columns))
    col = {c: table[:, k] for k, c in enumerate(columns)}
    tcol = {c: np.array([r.get(c, np.nan) if r.get(c) is not None else np.nan for r in records], float)
            for c in columns}
    area = lambda d: d["crop_height"] * d["crop_width"] / (tv.shape[2] * tv.shape[3])
    aspect = lambda d: np.log(d["crop_width"] / d["crop_height"])
    out = {"images": n, "draws": draws,
           "view_channel_mean": {"ours": ov.mean(axis=(0, 2, 3)).tolist(), "torch": tv.mean(axis=(0, 2, 3)).tolist()},
           "view_channel_std": {"ours": ov.std(axis=(0, 2, 3)).tolist(), "torch": tv.std(axis=(0, 2, 3)).tolist()},
           "per_view_mean_ks": [ks_2samp(ov[:, c].mean(axis=(1, 2)), tv[:, c].mean(axis=(1, 2))) for c in range(3)],
           "per_view_std_ks": [ks_2samp(ov[:, c].std(axis=(1, 2)), tv[:, c].std(axis=(1, 2))) for c in range(3)],
           "crop_area": ks_2samp(area(col), area(tcol)),
           "crop_log_aspect": ks_2samp(aspect(col), aspect(tcol)),
           "crop_top": ks_2samp(col["crop_top"], tcol["crop_top"]),
           "rates": {k: rate_test(col[k], tcol[k]) for k in ("flip", "jitter", "grayscale", "blur")},
           "jitter_factors": {k: ks_2samp(col[k], tcol[k]) for k in ("brightness", "contrast", "saturation", "hue")},
           "sigma": ks_2samp(col["sigma"], tcol["sigma"])}
    # Pixel-level: the same parameters applied by both (first draw of our table) -> view difference
    out["same_params_view_diff"] = same_params_diff(eth, hwc, ours, columns, n, mean, std, args.same)
    if args.out:
        json.dump(out, open(args.out, "w"), indent=1)
    print(json.dumps(out))


def apply_ours(eth, hwc, row, c, blur_k, upto):
    """Our drawn parameters (one row of our table) applied by torchvision's functional ops on
    the PIL image, up to and including stage `upto` (geometry, jitter, grayscale, blur)."""
    img = Image.fromarray(hwc)
    img = TF.resized_crop(img, int(row[c["crop_top"]]), int(row[c["crop_left"]]), int(row[c["crop_height"]]),
                          int(row[c["crop_width"]]), [32, 32], T.InterpolationMode.BILINEAR)
    if row[c["flip"]] == 1:
        img = TF.hflip(img)
    if upto == "geometry":
        return img
    if row[c["jitter"]] == 1:
        order = "%04d" % int(row[c["jitter_order"]])
        for op in order:
            if op == "0":
                img = TF.adjust_brightness(img, float(row[c["brightness"]]))
            elif op == "1":
                img = TF.adjust_contrast(img, float(row[c["contrast"]]))
            elif op == "2":
                img = TF.adjust_saturation(img, float(row[c["saturation"]]))
            else:
                img = TF.adjust_hue(img, float(row[c["hue"]]))
    if row[c["grayscale"]] == 1:
        img = TF.rgb_to_grayscale(img, 3)
    if row[c["blur"]] == 1:
        s = float(row[c["sigma"]])
        img = TF.gaussian_blur(img, blur_k, [s, s])
    return img


def same_params_diff(eth, hwc, ours, columns, n, mean, std, count):
    """Our drawn parameters applied by torchvision on PIL images against our views of them,
    in [0, 1] units: mean |ours - torch| and mean (ours - torch) over all views, and over views
    grouped by which colour stages ran."""
    table = np.asarray(ours["draws"], np.float64)[0]
    views = np.asarray(ours["views"], np.float32)[0]
    c = {name: k for k, name in enumerate(columns)}
    blur_k = ref.parse_params(eth["pretraining"]["dataset"]["transforms"]["GaussianBlur"])[0]["kernel_size"]
    groups = {}
    for i in range(min(count, n)):
        r = table[i]
        d = views[i] - TF.to_tensor(apply_ours(eth, hwc[i], r, c, blur_k, "all")).numpy()  # ours - torch
        key = "+".join(k for k in ("jitter", "grayscale", "blur") if r[c[k]] == 1) or "geometry only"
        for g in (key, "all"):
            e = groups.setdefault(g, [0, 0.0, 0.0, np.zeros(3)])
            e[0] += 1
            e[1] += float(np.abs(d).mean())
            e[2] += float(d.mean())
            e[3] += d.mean(axis=(1, 2))
    return {g: {"views": e[0], "mean_abs": e[1] / e[0], "mean_signed": e[2] / e[0],
                "mean_signed_per_channel": (e[3] / e[0]).tolist()} for g, e in sorted(groups.items())}


def cmd_probe(args):
    ours = json.load(open(args.ours))["result"]
    theirs = json.load(open(args.torch))["probe"]
    rows = []
    for o, t in zip(ours["search"], theirs["search"]):
        rows.append({"weight_decay": t["weight_decay"], "ours": o["valAccuracy"], "torch": t["val_accuracy"],
                     "diff_points": 100 * (o["valAccuracy"] - t["val_accuracy"]),
                     "train_loss_ours": o["trainLoss"], "train_loss_torch": t["train_loss"]})
    out = {"val": rows, "test": {"ours": ours["testAccuracy"], "torch": theirs["test_accuracy"],
                                 "diff_points": 100 * (ours["testAccuracy"] - theirs["test_accuracy"])},
           "chosen_wd": {"ours": ours["weightDecay"], "torch": theirs["weight_decay"]}}
    print(json.dumps(out, indent=1))


def cmd_loader(args):
    eth = ref.load_config(args.config)
    bs = eth["pretraining"]["batch_size"]
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(list(range(args.count)), batch_size=bs, shuffle=True, drop_last=False)
    sizes, seen = [], []
    for b in loader:
        sizes.append(len(b))
        seen.extend(int(i) for i in b)
    print(json.dumps({"count": args.count, "batch": bs, "steps": len(sizes), "last": sizes[-1],
                      "each_once": sorted(seen) == list(range(args.count))}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("encoder")
    p.add_argument("features")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("trajectory")
    p.add_argument("dir")
    p.add_argument("config")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-double", action="store_true", help="skip the float64 replay (the yardstick)")
    p.add_argument("--out")
    p = sub.add_parser("augment")
    p.add_argument("ours")
    p.add_argument("config")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--draws", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--same", type=int, default=2000, help="views compared pixel by pixel")
    p.add_argument("--out")
    p = sub.add_parser("probe")
    p.add_argument("ours")
    p.add_argument("torch")
    p = sub.add_parser("loader")
    p.add_argument("config")
    p.add_argument("--count", type=int, default=50000)
    args = ap.parse_args()
    if hasattr(args, "threads"):
        torch.set_num_threads(args.threads)
    {"encoder": cmd_encoder, "trajectory": cmd_trajectory, "augment": cmd_augment, "probe": cmd_probe,
     "loader": cmd_loader}[args.cmd](args)


if __name__ == "__main__":
    main()
