#!/usr/bin/python3
"""Two more isolation checks of issue 13, on files our tools write (run with Debian's python3-torch):

  init INITIAL.safetensors --seed S
      Our initial weights (DIR/initial.safetensors of `tools/eth_parity.ts trajectory`) against
      tools/eth_torch_reference.py's EthEncoder(128) under torch.manual_seed(S), tensor by tensor:
      mean and std, listing the tensors whose std differs by more than 5 % or whose mean differs
      by more than 0.05 + 0.2 std. (The trajectory and encoder checks load our weights into torch,
      so they cannot see a difference in the initialization distributions; this one can.)
  view-loss CHECKPOINT OURS_VIEWS.safetensors CONFIG --data-dir D [--modes train eval]
      One fixed encoder (our run checkpoint, loaded into torch) scored with the config's loss on our
      view pairs (`tools/eth_parity.ts augment ... --draws 2`) and on torchvision's view pairs of
      the same images, in batches of the config's batch size: is one side's augmentation harder?
      Prints the mean loss of each and the mean and standard deviation of the per-batch difference.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eth_parity as par  # noqa: E402
import eth_torch_reference as ref  # noqa: E402


def cmd_init(args):
    ours, _ = ref.read_safetensors(args.initial)
    torch.manual_seed(args.seed)
    theirs = {k: v.astype(np.float64) for k, v in ref.export_our_names(ref.EthEncoder(128)).items()}
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    differ = []
    for name in sorted(set(theirs) & set(ours)):
        a, b = np.asarray(ours[name], np.float64), theirs[name]
        if a.shape != b.shape:
            differ.append({"tensor": name, "ours_shape": a.shape, "torch_shape": b.shape})
            continue
        std_off = (b.std() > 0 and abs(a.std() / b.std() - 1) > 0.05) or (b.std() == 0 and a.std() != 0)
        if std_off or abs(a.mean() - b.mean()) > 0.05 + 0.2 * b.std():
            differ.append({"tensor": name, "size": int(a.size), "ours_mean": a.mean(), "ours_std": a.std(),
                           "torch_mean": b.mean(), "torch_std": b.std()})
    print(json.dumps({"compared": len(set(theirs) & set(ours)), "missing_in_ours": missing,
                      "only_in_ours": extra, "differ": differ}, default=str))


def cmd_view_loss(args):
    torch.set_num_threads(args.threads)
    eth = ref.load_config(args.config)
    model = ref.EthEncoder(128)
    ref.load_our_checkpoint(model, args.checkpoint)
    ours, _ = ref.read_safetensors(args.views)
    views = torch.from_numpy(np.array(ours["views"], np.float32))  # [2, n, 3, H, W] in [0, 1]
    if views.shape[0] != 2:
        raise SystemExit("%s: expected 2 draws per image (augment --draws 2), got %d" % (args.views, views.shape[0]))
    m, s = ref.CIFAR_STATS[eth["pretraining"]["dataset"]["name"]]
    mean, std = torch.tensor(m).view(1, 3, 1, 1), torch.tensor(s).view(1, 3, 1, 1)
    n = views.shape[1]
    hwc, _, _ = ref.read_cifar_bin(args.data_dir, "Cifar10", "train")
    torch.manual_seed(args.seed)
    recorder = par.Recorder(eth)
    tv = torch.stack([torch.stack([recorder(Image.fromarray(hwc[i]))[0] for i in range(n)]) for _ in range(2)])
    batch = eth["pretraining"]["batch_size"]
    mu = args.mu
    for mode in args.modes:
        getattr(model, mode)()
        lo, lt = [], []
        with torch.no_grad():
            for b in range(0, n - batch + 1, batch):
                o = torch.cat([(views[0, b:b + batch] - mean) / std, (views[1, b:b + batch] - mean) / std])
                t = torch.cat([tv[0, b:b + batch], tv[1, b:b + batch]])
                lo.append(float(par.halves_loss(eth, model(o), mu)))
                lt.append(float(par.halves_loss(eth, model(t), mu)))
        d = np.array(lo) - np.array(lt)
        print(json.dumps({"mode": mode, "batches": len(lo), "ours_views": round(float(np.mean(lo)), 4),
                          "torchvision_views": round(float(np.mean(lt)), 4), "diff_mean": round(float(d.mean()), 4),
                          "diff_sd": round(float(d.std(ddof=1)), 4) if len(d) > 1 else None}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init")
    p.add_argument("initial")
    p.add_argument("--seed", type=int, required=True)
    p = sub.add_parser("view-loss")
    p.add_argument("checkpoint")
    p.add_argument("views")
    p.add_argument("config")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--modes", nargs="+", default=["train", "eval"], choices=["train", "eval"])
    p.add_argument("--mu", type=float, default=0.6, help="μ of the weighted loss (experiment 27: 0.6)")
    p.add_argument("--seed", type=int, default=0, help="torch seed of torchvision's views")
    p.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    {"init": cmd_init, "view-loss": cmd_view_loss}[args.cmd](args)


if __name__ == "__main__":
    main()
