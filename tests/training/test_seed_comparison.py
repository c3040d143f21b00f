"""Seed-aware comparison on synthetic rows: jobs differing only by train.seed are one configuration, and the
verdict says whether the best configuration's lead exceeds the seed spread."""

import pytest

from detr_ft.tracking.comparison import configuration, format_seed_table, has_seed_repeats, seed_groups, seed_verdict


def params(lr: str, seed: int, run: str) -> dict:
    return {
        "train/learning_rate": lr,
        "train/seed": str(seed),
        "data/sampling_seed": str(seed),
        "callbacks/batch_seeding/seed": str(seed),
        "data/seed": "0",  # the dataset's own seed is part of what a run trained on
        "run_dir": run,
        "callbacks/results_picture/path": f"{run}/results.png",
    }


def row(lr: str, seed: int, best: float | None) -> dict:
    name = f"lr={lr}, seed={seed}"
    return {"name": name, "best": best, "seed": str(seed), "configuration": configuration(params(lr, seed, name))}


def test_runs_differing_only_by_seed_share_a_configuration():
    assert configuration(params("1e-4", 1, "multirun/0")) == configuration(params("1e-4", 2, "multirun/1"))
    assert configuration(params("1e-4", 1, "multirun/0")) != configuration(params("2e-4", 1, "multirun/0"))
    other_data = params("1e-4", 1, "multirun/0") | {"data/seed": "5"}
    assert configuration(other_data) != configuration(params("1e-4", 1, "multirun/0"))


def test_groups_hold_mean_and_spread_best_first():
    rows = [
        row("1e-4", 1, 0.50),
        row("2e-4", 1, 0.60),
        row("1e-4", 2, 0.54),
        row("2e-4", 2, 0.64),
        row("3e-4", 1, None),
    ]
    groups = seed_groups(rows)
    assert [g["name"] for g in groups] == ["lr=2e-4", "lr=1e-4"]  # the run without a best value is left out
    assert groups[0]["mean"] == pytest.approx(0.62)
    assert groups[0]["spread"] == pytest.approx(0.02828427, rel=1e-5)  # sample standard deviation
    assert groups[0]["seeds"] == ["1", "2"] and has_seed_repeats(groups)


def test_verdict_says_whether_the_lead_exceeds_the_spread():
    clear = seed_groups([row("2e-4", 1, 0.60), row("2e-4", 2, 0.62), row("1e-4", 1, 0.50), row("1e-4", 2, 0.51)])
    assert "which exceeds the seed spread" in seed_verdict(clear)
    noisy = seed_groups([row("2e-4", 1, 0.40), row("2e-4", 2, 0.70), row("1e-4", 1, 0.50), row("1e-4", 2, 0.52)])
    assert "does not exceed" in seed_verdict(noisy)
    single = seed_groups([row("2e-4", 1, 0.6), row("1e-4", 1, 0.5)])
    assert "seed noise is unknown" in seed_verdict(single) and not has_seed_repeats(single)


def test_the_table_lists_each_configuration_and_ends_with_the_verdict():
    groups = seed_groups([row("2e-4", 1, 0.60), row("2e-4", 2, 0.62), row("1e-4", 3, 0.50), row("1e-4", 4, 0.51)])
    lines = format_seed_table(groups, "val/mAP").splitlines()
    assert lines[2].startswith("lr=2e-4") and lines[2].endswith("1,2")
    assert lines[-1] == seed_verdict(groups)
