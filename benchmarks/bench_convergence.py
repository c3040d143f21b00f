"""Convergence of the training-only aids: val mAP50 per epoch of the paper's recipe against each aid and their
combination, same seeds and data, on two cases:

- quickstart: `make run`'s fine-tune (experiment=quickstart, 20 epochs);
- pretrain: `make pretrain`'s second stage (experiment=pretrain_synthetic, the DETR from a pretrained backbone
  on data=synthetic), cut to STEPS_PRETRAIN steps with validation every 2 epochs (200 steps).

Each arm x seed runs as its own `python -m detr_ft` process (logger=none, no prediction pictures), strictly one
after another (trainings on a 2-core machine must not share it), in <out>/<case>/<arm>_seed<seed>. mAP50 per
validation is read from the run's evaluation/per_class_ap.csv (its per-epoch class mean is val/mAP50), the epoch
times from its train.log. The results go to <out>/convergence.json after every arm (a rerun skips the arms
already there), then a table is printed and <out>/convergence.png drawn.

    python -m benchmarks convergence [--case quickstart|pretrain|both] [--arms a,b] [--seeds 0,1] [--out DIR]
    python -m benchmarks convergence --step-cost [--steps 12]   # only the cost of a step per arm (a few minutes)

The arms after `combined` are issue #29's: the sigmoid class head (criterion=focal | ia_bce | mal), more Group DETR
groups, RF-DETR's whole recipe (ia_bce, K=13, constant rate + EMA 0.993), learning-rate schedules on the
best-guess sigmoid recipe, and two config-only softmax arms (benchmarks/convergence_arms.py, docs/convergence.md).
"""

import argparse
import csv
import json
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from benchmarks.convergence_arms import ARMS, STEP_COST_ONLY

STEPS_PER_EPOCH = 100  # 800 training images at batch 8, both cases
STEPS_PRETRAIN = 1000
CASES = {
    "quickstart": ["experiment=quickstart"],
    "pretrain": [
        "experiment=pretrain_synthetic",
        f"train.epochs={STEPS_PRETRAIN // STEPS_PER_EPOCH}",
        "trainer.check_val_every_n_epoch=2",
    ],
}
COMMON = ["logger=none", "callbacks.prediction_pictures=null"]
EPOCHS = {"quickstart": 20, "pretrain": STEPS_PRETRAIN // STEPS_PER_EPOCH}
EVERY = {"quickstart": 1, "pretrain": 2}  # epochs between validations


def arm_epochs(case: str, arm: str) -> int:
    """The case's epochs, or the arm's own `train.epochs=` (the short-schedule arms)."""
    own = [int(o.split("=", 1)[1]) for o in ARMS.get(arm, []) if o.startswith("train.epochs=")]
    return own[-1] if own else EPOCHS[case]


def arm_command(case: str, arm: str, seed: int, run_dir: Path, backbone: Path | None) -> list[str]:
    extra = [f"model.backbone.weights={backbone}"] if case == "pretrain" else []
    overrides = [*CASES[case], *extra, *ARMS[arm], *COMMON, f"train.seed={seed}", f"hydra.run.dir={run_dir}"]
    return [sys.executable, "-m", "detr_ft", *overrides]


def read_curve(run_dir: Path) -> dict[int, float]:
    """epoch -> val mAP50: the mean AP50 over the classes with objects, as COCO's mAP50."""
    per_epoch = defaultdict(list)
    with open(run_dir / "evaluation" / "per_class_ap.csv") as file:
        for row in csv.DictReader(file):
            if float(row["AP50"]) >= 0:
                per_epoch[int(row["epoch"])].append(float(row["AP50"]))
    return {epoch: sum(values) / len(values) for epoch, values in sorted(per_epoch.items())}


def read_epoch_seconds(run_dir: Path, epochs: int) -> float:
    """Mean seconds per epoch (training and validation): from the run's first log line to its last evaluation."""
    first = (run_dir / "train.log").read_text().splitlines()[0]
    start = datetime.strptime(first[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    end = (run_dir / "evaluation" / "per_class_ap.csv").stat().st_mtime
    return round((end - start) / epochs, 1)


def run_arm(case: str, arm: str, seed: int, out: Path, backbone: Path | None) -> dict:
    run_dir = out / case / f"{arm}_seed{seed}"
    command = arm_command(case, arm, seed, run_dir, backbone)
    print(f"[convergence] {case} {arm} seed {seed}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    code = 0
    validations = arm_epochs(case, arm) // EVERY[case]  # a finished run's count
    finished = (run_dir / "evaluation" / "per_class_ap.csv").is_file() and len(read_curve(run_dir)) == validations
    if not finished:  # else: a run this benchmark did not record (started by hand, or the JSON was lost)
        with open(out / case / f"{arm}_seed{seed}.log", "w") as log:
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if code:
        return {"case": case, "arm": arm, "seed": seed, "failed": code, "seconds": round(seconds)}
    return {
        "case": case,
        "arm": arm,
        "seed": seed,
        "overrides": ARMS[arm],
        "map50": read_curve(run_dir),
        "epoch_seconds": read_epoch_seconds(run_dir, arm_epochs(case, arm)),
        "seconds": round(seconds),
    }


def pretrained_backbone(out: Path) -> Path:
    """`make pretrain`'s first stage, once."""
    path = out / "pretrain" / "backbone.pt"
    if not path.is_file():
        command = [sys.executable, "-m", "detr_ft.pretrain_backbone", "data=synthetic", f"output={path}"]
        subprocess.check_call([*command, f"hydra.run.dir={out / 'pretrain' / 'backbone'}"])
    return path


def print_table(results: list[dict]) -> None:
    for case in sorted({r["case"] for r in results}):
        rows = [r for r in results if r["case"] == case and "map50" in r]
        if not rows:
            continue
        epochs = sorted({int(e) for r in rows for e in r["map50"]})
        unit = "step" if case == "pretrain" else "ep"
        labels = [f"{(e + 1) * STEPS_PER_EPOCH}" if case == "pretrain" else str(e) for e in epochs]
        print(f"\n{case}: val mAP50 per {'validation (steps)' if case == 'pretrain' else 'epoch'}")
        print(f"{'arm':<26} {'seed':>4} " + " ".join(f"{unit}{label:>5}" for label in labels) + "  s/epoch")
        for r in rows:
            curve = {int(e): value for e, value in r["map50"].items()}
            values = " ".join(f"{curve.get(e, float('nan')):>{len(unit) + 5}.3f}" for e in epochs)
            seconds = r.get("epoch_seconds")  # missing in results kept from before it was recorded
            print(f"{r['arm']:<26} {r['seed']:>4} {values}  {'?' if seconds is None else round(seconds)}")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({r["case"] for r in results if "map50" in r})
    if not cases:
        return
    figure, axes = plt.subplots(1, len(cases), figsize=(6 * len(cases), 4), squeeze=False)
    shown = list(dict.fromkeys(r["arm"] for r in results if "map50" in r))  # colours apart for the arms drawn
    palette = plt.get_cmap("tab10" if len(shown) <= 10 else "tab20")
    colours = {arm: palette(index % palette.N) for index, arm in enumerate(shown)}
    for axis, case in zip(axes[0], cases, strict=True):
        for r in (r for r in results if r["case"] == case and "map50" in r):
            xs = [int(e) for e in r["map50"]]
            xs = [(e + 1) * STEPS_PER_EPOCH for e in xs] if case == "pretrain" else xs
            style = "-" if r["seed"] == 0 else "--"
            axis.plot(xs, list(r["map50"].values()), style, color=colours[r["arm"]], label=f"{r['arm']} s{r['seed']}")
        axis.set_title(case)
        axis.set_xlabel("step" if case == "pretrain" else "epoch")
        axis.set_ylabel("val mAP50")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks convergence")
    parser.add_argument("--case", choices=["quickstart", "pretrain", "both"], default="both")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {list(ARMS)}")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", default="outputs/convergence")
    parser.add_argument("--step-cost", action="store_true", help="only time a training step per arm (interleaved)")
    parser.add_argument("--steps", type=int, default=12, help="with --step-cost: timed steps per arm and phase")
    args = parser.parse_args(argv or [])
    arms = args.arms.split(",")
    if args.step_cost and args.arms == parser.get_default("arms"):
        arms += list(STEP_COST_ONLY)
    unknown = sorted(set(arms) - set(ARMS) - (set(STEP_COST_ONLY) if args.step_cost else set()))
    if unknown:
        sys.exit(f"--arms: unknown {unknown}; valid: {list(ARMS)}")
    out = Path(args.out)
    if args.step_cost:
        from benchmarks.convergence_step_cost import step_costs

        out.mkdir(parents=True, exist_ok=True)
        step_costs(
            {arm: {**ARMS, **STEP_COST_ONLY}[arm] for arm in ["baseline", *[a for a in arms if a != "baseline"]]},
            args.steps,
            out / "step_cost.json",
        )
        print(f"\n{out / 'step_cost.json'}")
        return
    json_path = out / "convergence.json"
    results = json.loads(json_path.read_text()) if json_path.is_file() else []
    done = {(r["case"], r["arm"], r["seed"]) for r in results if "map50" in r}
    cases = ["quickstart", "pretrain"] if args.case == "both" else [args.case]
    seeds = [int(s) for s in args.seeds.split(",")]
    for case in cases:
        (out / case).mkdir(parents=True, exist_ok=True)
        backbone = pretrained_backbone(out) if case == "pretrain" else None
        for seed in seeds:  # every arm's first seed before any second seed
            for arm in arms:
                if (case, arm, seed) in done:
                    continue
                result = run_arm(case, arm, seed, out, backbone)
                results = [r for r in results if (r["case"], r["arm"], r["seed"]) != (case, arm, seed)] + [result]
                json_path.write_text(json.dumps(results, indent=1))
                print_table(results)
                plot(results, out / "convergence.png")
    print_table(results)
    plot(results, out / "convergence.png")
    print(f"\n{json_path}, {out / 'convergence.png'}")


if __name__ == "__main__":
    main(sys.argv[1:])
