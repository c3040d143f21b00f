"""A comparison of runs: one row per run sorted by its best value of a metric (best first), a text table, and
a PNG of the metric per epoch, logged to the sweep's parent run when the runs are one sweep's jobs, else to a
run tagged as a comparison. `python -m detr_ft.compare` is its command line."""

from pathlib import Path

import matplotlib
from mlflow.tracking import MlflowClient

from detr_ft.tracking.lookup import find_runs, newest_sweep
from detr_ft.tracking.tags import COMPARISON_KIND, KIND_TAG, PARENT_TAG

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def _backbone_lr(params: dict) -> str:
    """The effective backbone rate, as the run's resolved config recorded it (the module's group rate)."""
    return params.get("module/backbone_learning_rate", "?")


# The params train.seed sets (the config interpolates it); two runs that differ only here are one configuration.
SEED_PARAMS = ("train/seed", "data/sampling_seed", "callbacks/batch_seeding/seed")


def configuration(params: dict) -> tuple:
    """What a run trained, as its resolved config's params say, without its seeds and anything naming its own run
    folder (checkpoint, picture and log paths differ between any two runs)."""
    run_dir = params.get("run_dir")
    return tuple(
        sorted(
            (key, value)
            for key, value in params.items()
            if key not in SEED_PARAMS and key != "run_dir" and not (run_dir and run_dir in value)
        )
    )


def _row(client: MlflowClient, run, metric: str) -> dict:
    # A resumed run logs again the steps after its last checkpoint: the newest value of each step counts.
    logged = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.timestamp)
    history = list({m.step: m for m in logged}.values())
    best = max(history, key=lambda m: m.value) if history else None
    epochs = {m.step: int(m.value) for m in client.get_metric_history(run.info.run_id, "epoch")}
    end = run.info.end_time or run.info.start_time
    params = run.data.params
    return {
        "run_id": run.info.run_id,
        "name": run.info.run_name,
        "status": run.info.status,
        "strategy": run.data.tags.get("strategy", "?"),
        "lr": params.get("train/learning_rate", "?"),
        "backbone_lr": _backbone_lr(params),
        "best": best.value if best else None,
        "best_epoch": epochs.get(best.step) if best else None,
        "minutes": (end - run.info.start_time) / 60000,
        "checkpoint": run.data.tags.get("best_checkpoint", ""),
        "curve": [m.value for m in sorted(history, key=lambda m: m.step)],
        "seed": params.get("train/seed"),
        "configuration": configuration(params),
    }


def collect_rows(client: MlflowClient, runs: list, metric: str = "val/mAP") -> list[dict]:
    """One row per run, sorted by the run's best value of `metric` (best first; runs without it last)."""
    rows = [_row(client, run, metric) for run in runs]
    return sorted(rows, key=lambda r: (r["best"] is None, -(r["best"] or 0)))


def plot_curves(rows: list[dict], metric: str, title: str, path: Path) -> Path:
    """The metric per validation epoch of every run, one line each, as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(8, 5))
    for row in rows:
        if row["curve"]:
            axes.plot(range(len(row["curve"])), row["curve"], marker="o", label=row["name"])
    axes.set_xlabel("validation epoch")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric}: {title}")
    if any(row["curve"] for row in rows):
        axes.legend(fontsize="small")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def compare(
    sweep: str | None = None,
    experiment: str = "detr_ft",
    runs: list[str] | None = None,
    metric: str = "val/mAP",
    tracking_uri: str = "sqlite:///mlflow.db",
    output: str | None = None,
):
    """-> (rows sorted best first, path of the plot). `sweep` is a sweep folder or its parent run's id; a parent
    run's id in `runs` stands for its jobs."""
    client = MlflowClient(tracking_uri)
    if not sweep and not runs:
        sweep = newest_sweep(tracking_uri, experiment)
    selected = find_runs(tracking_uri, experiment, sweep, runs)
    if not selected:
        raise ValueError(
            f"no runs found (sweep={sweep}, logger.experiment_name={experiment}, runs={runs}) in {tracking_uri}"
        )
    rows = collect_rows(client, selected, metric)
    label = (sweep or experiment).strip("/").replace("/", "_")
    folder = Path(output or Path("comparisons") / label)
    plot = plot_curves(rows, metric, sweep or experiment, folder / f"{metric.replace('/', '_')}.png")
    parents = {run.data.tags.get(PARENT_TAG) for run in selected}
    if len(parents) == 1 and None not in parents:  # one sweep's jobs: its parent run holds the comparison
        client.log_artifact(parents.pop(), str(plot), artifact_path="comparison")
        return rows, plot
    experiment_id = selected[0].info.experiment_id
    summary = client.create_run(
        experiment_id,
        run_name=f"compare-{label}"[:250],
        tags={KIND_TAG: COMPARISON_KIND, **({"sweep": sweep} if sweep else {})},
    )
    client.log_artifact(summary.info.run_id, str(plot))
    client.set_terminated(summary.info.run_id)
    return rows, plot


def format_table(rows: list[dict], metric: str) -> str:
    header = (
        f"{'run':28} {'strategy':11} {'lr':>8} {'bb lr':>8} {'best ' + metric:>14} {'epoch':>5} {'min':>5} "
        f"{'status':9} checkpoint"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        best = "-" if r["best"] is None else f"{r['best']:.4f}"
        epoch = "-" if r["best_epoch"] is None else str(r["best_epoch"])
        lines.append(
            f"{r['name'][:28]:28} {r['strategy'][:11]:11} {r['lr']:>8} {r['backbone_lr']:>8} {best:>14} "
            f"{epoch:>5} {r['minutes']:5.1f} {r['status'][:9]:9} {r['checkpoint']}"
        )
    return "\n".join(lines)


def _configuration_name(names: list[str]) -> str:
    """The jobs' common name without its `seed=` part (`lr=2e-4, seed=1` -> `lr=2e-4`)."""
    parts = [part for part in names[0].split(", ") if not part.startswith("seed=")]
    return ", ".join(parts) or names[0]


def seed_groups(rows: list[dict]) -> list[dict]:
    """Rows that differ only by their seed, as one group each: its runs, seeds, and the mean and spread (sample
    standard deviation; 0 for one run) of their best values. Sorted by mean, best first; runs without a best value
    are left out."""
    grouped: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["best"] is not None:
            grouped.setdefault(row["configuration"], []).append(row)
    groups = []
    for members in grouped.values():
        values = [row["best"] for row in members]
        mean = sum(values) / len(values)
        spread = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
        groups.append(
            {
                "name": _configuration_name([row["name"] for row in members]),
                "runs": len(members),
                "seeds": [row["seed"] for row in members],
                "mean": mean,
                "spread": spread,
            }
        )
    return sorted(groups, key=lambda group: -group["mean"])


def seed_verdict(groups: list[dict]) -> str:
    """Whether the best configuration's lead over the runner-up exceeds the seed spread (the larger of the two)."""
    if len(groups) < 2:
        return "one configuration only: nothing to compare"
    best, second = groups[0], groups[1]
    if best["runs"] < 2 or second["runs"] < 2:
        return f"{best['name']} leads, but with one seed per configuration the seed noise is unknown"
    lead, spread = best["mean"] - second["mean"], max(best["spread"], second["spread"])
    verdict = "exceeds" if lead > spread else "does not exceed"
    return f"{best['name']} leads {second['name']} by {lead:.4f}, which {verdict} the seed spread {spread:.4f}"


def format_seed_table(groups: list[dict], metric: str) -> str:
    """One line per configuration: runs, seeds, mean and spread of the best `metric`, then the verdict."""
    header = f"{'configuration':32} {'runs':>4} {'mean best ' + metric:>18} {'spread':>8} seeds"
    lines = [header, "-" * len(header)]
    for group in groups:
        seeds = ",".join(str(seed) for seed in group["seeds"])
        lines.append(
            f"{group['name'][:32]:32} {group['runs']:>4} {group['mean']:>18.4f} {group['spread']:>8.4f} {seeds}"
        )
    return "\n".join([*lines, "", seed_verdict(groups)])


def has_seed_repeats(groups: list[dict]) -> bool:
    return any(group["runs"] > 1 for group in groups)
