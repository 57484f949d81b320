#!/usr/bin/python3
"""Golden fixtures for the graph optimizers (tests/fixtures/optim/golden.json).

Runs the real torch.optim.SGD, Adam and AdamW classes in float64 for three
steps on fixed parameters and fixed gradients, with a different learning rate
at every step, and records the parameters and optimizer state after each step.

LARS has no torch.optim class; it is implemented here independently as the
SimCLR-style wrapper over torch.optim.SGD (weight_decay=0 in SGD): for every
parameter that is not excluded (BN/bias when exclude_bn_and_bias),
    d = grad + wd * p
    trust = eta * ||p|| / ||d||  if ||p|| > 0 and ||d|| > 0  else 1
    p.grad = trust * d
then SGD with momentum steps with the group lr (excluded parameters keep
their raw gradient and get no weight decay).

Parameters: w [3,4] (random), b [4] (random, a bias), z [2,3] (zeros: the
||p|| = 0 branch of LARS), y [5] (random; its gradient at step 2 is exactly
zero: the ||g|| = 0 branch when wd is 0).

Run: /usr/bin/python3 tools/optim_golden.py  (needs torch; tests do not)
"""

import json
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "optim",
                   "golden.json")
STEPS = 3

PARAMS = [("w", [3, 4], False), ("b", [4], True), ("z", [2, 3], False), ("y", [5], False)]

CASES = [
    {"name": "sgd_plain", "config": {"kind": "sgd", "momentum": 0, "weightDecay": 0},
     "lrs": [0.1, 0.05, 0.2]},
    {"name": "sgd_momentum_wd", "config": {"kind": "sgd", "momentum": 0.9, "weightDecay": 0.05},
     "lrs": [0.1, 0.05, 0.2]},
    {"name": "sgd_nesterov_wd",
     "config": {"kind": "sgd", "momentum": 0.9, "weightDecay": 0.05, "nesterov": True},
     "lrs": [0.1, 0.05, 0.2]},
    {"name": "adam_l2",
     "config": {"kind": "adam", "betas": [0.9, 0.999], "eps": 1e-8, "weightDecay": 0.01},
     "lrs": [0.1, 0.03, 0.05]},
    {"name": "adamw",
     "config": {"kind": "adamw", "betas": [0.8, 0.99], "eps": 1e-6, "weightDecay": 0.1},
     "lrs": [0.1, 0.03, 0.05]},
    {"name": "lars_simclr",
     "config": {"kind": "lars", "momentum": 0.9, "weightDecay": 1e-2, "trustCoefficient": 0.001,
                "excludeBnAndBias": True},
     "lrs": [2.0, 1.0, 3.0]},
    {"name": "lars_all_params_no_wd",
     "config": {"kind": "lars", "momentum": 0.8, "weightDecay": 0, "trustCoefficient": 0.05,
                "excludeBnAndBias": False},
     "lrs": [0.5, 0.25, 1.0]},
]


def make_data():
    gen = torch.Generator().manual_seed(20240601)
    init = {}
    for name, shape, _ in PARAMS:
        init[name] = (torch.zeros(shape, dtype=torch.float64) if name == "z"
                      else torch.randn(shape, generator=gen, dtype=torch.float64))
    grads = []
    for step in range(STEPS):
        g = {name: torch.randn(shape, generator=gen, dtype=torch.float64)
             for name, shape, _ in PARAMS}
        if step == 1:
            g["y"] = torch.zeros(5, dtype=torch.float64)
        grads.append(g)
    return init, grads


def make_optimizer(config, params):
    kind = config["kind"]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.0, momentum=config["momentum"],
                               weight_decay=config["weightDecay"],
                               nesterov=config.get("nesterov", False))
    if kind == "adam":
        return torch.optim.Adam(params, lr=0.0, betas=tuple(config["betas"]), eps=config["eps"],
                                weight_decay=config["weightDecay"])
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=0.0, betas=tuple(config["betas"]), eps=config["eps"],
                                 weight_decay=config["weightDecay"])
    if kind == "lars":
        return torch.optim.SGD(params, lr=0.0, momentum=config["momentum"], weight_decay=0.0)
    raise ValueError(kind)


def lars_rescale(config, params, is_bn_or_bias):
    wd = config["weightDecay"]
    eta = config["trustCoefficient"]
    with torch.no_grad():
        for p, excluded in zip(params, is_bn_or_bias):
            if config["excludeBnAndBias"] and excluded:
                continue
            d = p.grad + wd * p
            p_norm = torch.linalg.vector_norm(p).item()
            d_norm = torch.linalg.vector_norm(d).item()
            trust = eta * p_norm / d_norm if p_norm > 0 and d_norm > 0 else 1.0
            p.grad = trust * d


def state_of(config, opt, p):
    st = opt.state[p]
    if config["kind"] in ("sgd", "lars"):
        buf = st.get("momentum_buffer")
        return {} if buf is None else {"momentum": buf.flatten().tolist()}
    return {"exp_avg": st["exp_avg"].flatten().tolist(),
            "exp_avg_sq": st["exp_avg_sq"].flatten().tolist()}


def run_case(case, init, grads):
    config = case["config"]
    params = [init[name].clone().requires_grad_(True) for name, _, _ in PARAMS]
    is_bn_or_bias = [flag for _, _, flag in PARAMS]
    opt = make_optimizer(config, params)
    steps = []
    for step in range(STEPS):
        for p, (name, _, _) in zip(params, PARAMS):
            p.grad = grads[step][name].clone()
        if config["kind"] == "lars":
            lars_rescale(config, params, is_bn_or_bias)
        opt.param_groups[0]["lr"] = case["lrs"][step]
        opt.step()
        steps.append({
            "params": {name: p.detach().flatten().tolist() for p, (name, _, _) in zip(params, PARAMS)},
            "state": {name: state_of(config, opt, p) for p, (name, _, _) in zip(params, PARAMS)},
        })
    return {**case, "steps": steps}


def main():
    init, grads = make_data()
    out = {
        "generator": "tools/optim_golden.py, torch " + torch.__version__ + ", float64",
        "params": [{"name": name, "shape": shape, "isBnOrBias": flag,
                    "values": init[name].flatten().tolist()} for name, shape, flag in PARAMS],
        "grads": [{name: g[name].flatten().tolist() for name, _, _ in PARAMS} for g in grads],
        "cases": [run_case(case, init, grads) for case in CASES],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("wrote", os.path.normpath(OUT), "with", len(CASES), "cases")


if __name__ == "__main__":
    main()
