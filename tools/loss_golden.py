#!/usr/bin/python3
"""Golden fixtures for the loss references (tests/fixtures/loss_golden.json).

An independent torch float64 implementation of the ORIGINAL ETH formulas with
raw exponentials exp(s/tau), as the original code computes them
(joelneeser/curriculum-contrastive-learning: src/losses/loss_nt_xent.py,
loss_weighted_nt_xent.py, weights.py, similarities.py): weights and
normalization factors under torch.no_grad, loss -log(exp_pos / denominator),
gradients w.r.t. z by autograd.

Two evaluations per case:
- `loss_value`/`grad` (the golden values): the formulas with the negatives
  summed directly (Σ over k != i, partner). The original code instead sums the
  whole row and subtracts the diagonal and the positive; that is the same
  formula but cancels catastrophically when e^{1/tau} or the positive
  dominates the row (up to 1e-3 relative error in float64 here, and the NaNs
  of the original in float32).
- `original_loss`, `original_finite`, `original_finite_float32`: the code
  exactly as written (row sum minus diagonal), in float64 and on float32
  inputs as in the original training.
Where the raw-exponential golden is not finite (exp(s/tau) overflows), the
values are null and the test only checks that ours is finite.
The one deliberate difference from the original: norms are taken in float64
(the original casts the embeddings to float32 for the norm only).

Run: /usr/bin/python3 tools/loss_golden.py  (needs torch; tests do not)
"""

import json
import os
import sys

import torch

EPS = 1e-10
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                   "loss_golden.json")


def cosine_similarity(z):
    norms = torch.linalg.vector_norm(z, dim=1, ord=2)
    zn = z / (norms.unsqueeze(1) + EPS)
    return zn @ zn.T


def nt_xent_original(z, temperature):
    sim = cosine_similarity(z)
    exp_sim = torch.exp(sim / temperature)
    denominators = torch.sum(exp_sim, dim=1) - torch.diagonal(exp_sim)
    pos1 = torch.diagonal(exp_sim, offset=1)[::2]
    pos2 = torch.diagonal(exp_sim, offset=-1)[::2]
    losses1 = -torch.log(pos1 / denominators[::2])
    losses2 = -torch.log(pos2 / denominators[1::2])
    return (losses1.mean() + losses2.mean()) / 2


def gaussian_weights(sim, sigma, mean, b_l, b_u):
    weights = torch.exp(-(sim - mean)**2 / sigma**2)
    weights[sim < b_l] = 1e-3 * weights[sim < b_l]
    weights[sim > b_u] = 1e-3 * weights[sim > b_u]
    return weights


def weighted_nt_xent_original(z, temperature, sigma, mean, b_l, b_u, normalization):
    sim = cosine_similarity(z)
    with torch.no_grad():
        weights = gaussian_weights(sim, sigma, mean, b_l, b_u)
    exp_sim = torch.exp(sim / temperature)
    wexp = weights * exp_sim
    pos1 = torch.diagonal(exp_sim, offset=1)[::2]
    wpos1 = torch.diagonal(wexp, offset=1)[::2]
    pos2 = torch.diagonal(exp_sim, offset=-1)[::2]
    wpos2 = torch.diagonal(wexp, offset=-1)[::2]
    inter = torch.sum(wexp, dim=1) - torch.diagonal(wexp)
    if normalization == "negatives_constant_total_weight":
        wsum = torch.sum(weights, dim=1) - torch.diagonal(weights)
        n = weights.shape[0]
        norm1 = (wsum[::2] - torch.diagonal(weights, offset=1)[::2] + EPS) / (n - 2 + EPS)
        norm2 = (wsum[1::2] - torch.diagonal(weights, offset=-1)[::2] + EPS) / (n - 2 + EPS)
        den1 = (inter[::2] - wpos1) / norm1 + pos1
        den2 = (inter[1::2] - wpos2) / norm2 + pos2
    elif normalization == "None":
        den1 = inter[::2] - wpos1 + pos1
        den2 = inter[1::2] - wpos2 + pos2
    else:
        raise ValueError(f"unknown normalization {normalization!r}")
    losses1 = -torch.log(pos1 / den1)
    losses2 = -torch.log(pos2 / den2)
    return (losses1.mean() + losses2.mean()) / 2


def partner_mask(rows):
    idx = torch.arange(rows)
    partner = idx ^ 1
    negatives = torch.ones(rows, rows, dtype=torch.bool)
    negatives[idx, idx] = False
    negatives[idx, partner] = False
    return partner, negatives


def nt_xent_direct(z, temperature):
    rows = z.shape[0]
    partner, negatives = partner_mask(rows)
    exp_sim = torch.exp(cosine_similarity(z) / temperature)
    pos = exp_sim[torch.arange(rows), partner]
    den = pos + (exp_sim * negatives).sum(dim=1)
    return (-torch.log(pos / den)).mean()


def weighted_nt_xent_direct(z, temperature, sigma, mean, b_l, b_u, normalization):
    rows = z.shape[0]
    partner, negatives = partner_mask(rows)
    sim = cosine_similarity(z)
    with torch.no_grad():
        weights = gaussian_weights(sim, sigma, mean, b_l, b_u) * negatives
    exp_sim = torch.exp(sim / temperature)
    pos = exp_sim[torch.arange(rows), partner]
    weighted_negatives = (weights * exp_sim).sum(dim=1)
    if normalization == "negatives_constant_total_weight":
        with torch.no_grad():
            norm = (weights.sum(dim=1) + EPS) / (rows - 2 + EPS)
        den = weighted_negatives / norm + pos
    elif normalization == "None":
        den = weighted_negatives + pos
    else:
        raise ValueError(f"unknown normalization {normalization!r}")
    return (-torch.log(pos / den)).mean()


def evaluate(case, dtype, as_written):
    zt = torch.tensor(case["z"], dtype=dtype).reshape(case["rows"], case["dim"])
    zt.requires_grad_(True)
    o = case["options"]
    if case["loss"] == "ntxent":
        fn = nt_xent_original if as_written else nt_xent_direct
        loss = fn(zt, o["temperature"])
    else:
        fn = weighted_nt_xent_original if as_written else weighted_nt_xent_direct
        loss = fn(zt, o["temperature"], o["sigma"], o["mean"], o["lowerBound"], o["upperBound"],
                  o["normalization"])
    loss.backward()
    grad = zt.grad.reshape(-1)
    finite = bool(torch.isfinite(loss).item() and torch.isfinite(grad).all().item())
    return float(loss.item()), [float(g) for g in grad.tolist()], finite


def near_bound(z, rows, dim, o):
    """True if a similarity is within 1e-9 of a strict bound (rounding could flip the weight)."""
    sim = cosine_similarity(torch.tensor(z, dtype=torch.float64).reshape(rows, dim))
    off = ~torch.eye(rows, dtype=torch.bool)
    for b in (o.get("lowerBound"), o.get("upperBound")):
        if b is not None and bool(((sim - b).abs() < 1e-9)[off].any()):
            return True
    return False


def make_cases():
    gen = torch.Generator().manual_seed(20240505)

    def randn(rows, dim, scale=1.0):
        return [float(x) * scale for x in torch.randn(rows * dim, generator=gen, dtype=torch.float64)]

    cases = []

    def add(name, loss, n, dim, options, z=None):
        rows = 2 * n
        while True:
            zz = z if z is not None else randn(rows, dim)
            if z is not None or not near_bound(zz, rows, dim, options):
                break
        cases.append({"name": name, "loss": loss, "rows": rows, "dim": dim,
                      "options": options, "z": zz})

    taus = [0.05, 0.1, 0.5]
    sigmas = [0.25, 0.5, 1.0]
    mus = [-1.0, 0.0, 0.6, 1.0]
    ns = [2, 3, 8]
    dims = {2: 3, 3: 4, 8: 5}
    for tau in taus:
        for n in ns:
            add(f"ntxent tau={tau} N={n}", "ntxent", n, dims[n], {"temperature": tau})

    for idx in range(24):
        tau = taus[idx % 3]
        sigma = sigmas[(idx // 3) % 3]
        mu = mus[idx % 4]
        active = idx % 2 == 1
        n = ns[(idx // 2) % 3]
        norm = ["negatives_constant_total_weight", "None"][(idx // 6) % 2]
        lo, hi = (-0.5, 0.5) if active else (-1.0, 1.0)
        add(f"weighted #{idx} tau={tau} sigma={sigma} mu={mu} bounds=[{lo},{hi}] N={n} {norm}",
            "weighted", n, dims[n],
            {"temperature": tau, "sigma": sigma, "mean": mu, "lowerBound": lo, "upperBound": hi,
             "normalization": norm})

    # Collapsed embeddings: every row the same vector.
    v = randn(1, 4)
    add("ntxent collapsed tau=0.1 N=3", "ntxent", 3, 4, {"temperature": 0.1}, v * 6)
    add("weighted collapsed tau=0.05 sigma=0.25 mu=-1 N=3 ctw", "weighted", 3, 4,
        {"temperature": 0.05, "sigma": 0.25, "mean": -1.0, "lowerBound": -1.0, "upperBound": 1.0,
         "normalization": "negatives_constant_total_weight"}, v * 6)
    # Pairs on opposite poles: positives s = 1, negatives s = -1 (the diagonal
    # dominates the raw row sums: the original cancels e^{1/tau} against itself).
    w = randn(1, 3)
    anti = w + w + [-x for x in w] + [-x for x in w]
    add("ntxent antipodal tau=0.05 N=2", "ntxent", 2, 3, {"temperature": 0.05}, anti)
    add("weighted antipodal tau=0.05 sigma=0.25 mu=1 N=2 ctw", "weighted", 2, 3,
        {"temperature": 0.05, "sigma": 0.25, "mean": 1.0, "lowerBound": -1.0, "upperBound": 1.0,
         "normalization": "negatives_constant_total_weight"}, anti)
    # Rows of very different norms, one zero row.
    mixed = randn(6, 3)
    scales = [1e150, 1e-3, 1.0, 0.0, 1e6, 1e-6]
    mixed = [x * scales[k // 3] for k, x in enumerate(mixed)]
    add("ntxent mixed norms with zero row tau=0.1 N=3", "ntxent", 3, 3, {"temperature": 0.1}, mixed)
    add("weighted mixed norms with zero row tau=0.1 sigma=0.5 mu=0.6 N=3 None", "weighted", 3, 3,
        {"temperature": 0.1, "sigma": 0.5, "mean": 0.6, "lowerBound": -1.0, "upperBound": 1.0,
         "normalization": "None"}, mixed)
    # tau so small that exp(s/tau) overflows float64 in the original.
    add("ntxent tau=0.001 N=3 (original overflows)", "ntxent", 3, 4, {"temperature": 0.001})
    add("weighted tau=0.001 sigma=0.25 mu=0.6 N=3 ctw (original overflows)", "weighted", 3, 4,
        {"temperature": 0.001, "sigma": 0.25, "mean": 0.6, "lowerBound": -1.0, "upperBound": 1.0,
         "normalization": "negatives_constant_total_weight"})
    return cases


def main():
    torch.set_grad_enabled(True)
    cases = make_cases()
    out = []
    for case in cases:
        loss, grad, finite = evaluate(case, torch.float64, as_written=False)
        original, _, original_finite = evaluate(case, torch.float64, as_written=True)
        _, _, original_finite32 = evaluate(case, torch.float32, as_written=True)
        entry = dict(case)
        entry["loss_value"] = loss if finite else None
        entry["grad"] = grad if finite else None
        entry["original_loss"] = original if original_finite else None
        entry["original_finite"] = original_finite
        entry["original_finite_float32"] = original_finite32
        out.append(entry)
        deviation = abs(original - loss) / abs(loss) if finite and original_finite and loss else 0.0
        print(f"golden:{'ok ' if finite else 'inf'} original f64:{'ok ' if original_finite else 'NaN'} "
              f"f32:{'ok ' if original_finite32 else 'NaN'} loss={loss!r:24} "
              f"as-written rel.dev={deviation:.1e}  {case['name']}")
    doc = {
        "generator": "tools/loss_golden.py (torch float64, original ETH formulas, raw exponentials)",
        "torch": torch.__version__,
        "cases": out,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, allow_nan=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(out)} cases, {os.path.getsize(OUT)} bytes to {os.path.relpath(OUT)}")


if __name__ == "__main__":
    sys.exit(main())
