#!/usr/bin/python3
"""The side-by-side table of issue 13: our run logs (experiment_logs/<experiment>.json, or the
probe results of tools/eth_parity.ts) against tools/eth_torch_reference.py results, with means
per pipeline and experiment, and the data each run saw (known data set or fingerprint).

Usage: tools/eth_compare_table.py --ours A.json B.json ... --torch C.json D.json ...
Each file is one run; the label is taken from the file (experiment, seed, epochs).
"""
import argparse
import json
import statistics


def ours_rows(path):
    """One row per evaluated encoder in a log: the trained one and, when the run had
    evaluation.random_init_baseline, the same encoder at its random initialization."""
    log = json.load(open(path))
    rows = [ours_row(log)]
    init = log.get("random_init_evaluation")
    if init:
        linear = init["details"]["linear"]
        rows.append(dict(rows[0], experiment="random init", losses=[],
                         val=[s["valAccuracy"] for s in linear["search"]], test=linear["testAccuracy"]))
    return rows


def ours_row(log):
    if "result" in log:  # tools/eth_parity.ts probe output (e.g. the random-init baseline)
        r = log["result"]
        data = (log.get("meta") or {}).get("data")
        data = json.loads(data) if isinstance(data, str) else data
        return {"pipeline": "ours", "experiment": "random init", "seed": log["seed"], "losses": [],
                "val": [s["valAccuracy"] for s in r["search"]], "test": r["testAccuracy"], "data": data}
    ev = log["evaluations"][-1]["details"]["linear"]
    config = log["resolved_config"]
    return {"pipeline": "ours", "experiment": log["experiment"], "seed": config["seed"],
            "losses": log["average_training_loss_per_epoch"],
            "val": [s["valAccuracy"] for s in ev["search"]], "test": ev["testAccuracy"], "data": log.get("data")}


def torch_row(path):
    r = json.load(open(path))
    exp = r["experiment"] if r.get("epochs", 1) > 0 else "random init"
    if "features" in r:
        exp = "probe on %s" % r["features"]["path"]
    d = r["data"]
    return {"pipeline": "torch", "experiment": exp, "seed": r["seed"],
            "losses": r.get("average_training_loss_per_epoch", []),
            "val": [s["val_accuracy"] for s in r["probe"]["search"]], "test": r["probe"]["test_accuracy"],
            "data": {"full": {"sha256": d["train_fingerprint"]}}}


def pct(x):
    return "%.1f" % (100 * x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", nargs="*", default=[])
    ap.add_argument("--torch", nargs="*", default=[])
    args = ap.parse_args()
    rows = [row for p in args.ours for row in ours_rows(p)] + [torch_row(p) for p in args.torch]
    rows.sort(key=lambda r: (r["experiment"], r["pipeline"], r["seed"]))
    print("| experiment | pipeline | seed | loss per epoch | probe val % per wd (1e-6 / 1.8e-5 / 3.2e-4 / 5.6e-3 / 0.1) | test % | data (train fingerprint) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        fp = ((r.get("data") or {}).get("full") or {}).get("sha256", "?")[:12]
        print("| %s | %s | %s | %s | %s | %s | %s |" % (
            r["experiment"], r["pipeline"], r["seed"], " / ".join("%.3f" % x for x in r["losses"]),
            " / ".join(pct(v) for v in r["val"]), "%.2f" % (100 * r["test"]), fp))
    print()
    groups = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["pipeline"]), []).append(100 * r["test"])
    print("| experiment | pipeline | runs | mean test % | std |")
    print("|---|---|---|---|---|")
    for (exp, pipe), tests in sorted(groups.items()):
        sd = statistics.stdev(tests) if len(tests) > 1 else float("nan")
        print("| %s | %s | %d | %.2f | %.2f |" % (exp, pipe, len(tests), statistics.mean(tests), sd))


if __name__ == "__main__":
    main()
