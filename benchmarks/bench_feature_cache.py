"""Frozen-backbone epochs with and without train.cache_backbone_features, through the real training loop:
`make run`'s model and data (detr_small on synthetic_v2: 800 train and 150 val images of 128 px, batch 8) with
finetune_strategy=frozen and data.train_augmentation=false (what the cache needs), three runs in a row: the
cache off; the cache on in an empty folder (a sweep's first job: epoch 0 computes and writes, later epochs
read); the cache on again in the same folder (the sweep's next job: every epoch reads). Prints each epoch's
seconds (training steps, then validation with its COCO evaluation) and the estimated time of a 4-job LR sweep.

One torch thread and the images loaded in the main process (num_workers=0), so the process's CPU seconds are
the epoch's whole work: on a shared machine they move far less with the load than wall seconds (both shown).

First, per training step (no loader, no Lightning): a frozen step from the images vs from cached features, for
detr_small (batch 8, 128 px) and detr_r50 (batch 2, 512 px): the share of a frozen step the backbone takes
bounds what the cache can save (Amdahl).

    python -m benchmarks feature_cache                 (in `make bench`)
    python -m benchmarks.bench_feature_cache [EPOCHS]  (EPOCHS=0: the per-step part only)
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl

EPOCHS = 2  # epoch 0 vs epoch 1 is the comparison; more epochs only repeat epoch 1
SWEEP_JOBS, SWEEP_EPOCHS = 4, 20  # a 4-value LR sweep of make run's length


class EpochClock(pl.Callback):
    """Seconds of each epoch's training steps and of its validation: (wall, process CPU) pairs."""

    def __init__(self):
        self.train: list[tuple[float, float]] = []
        self.val: list[tuple[float, float]] = []

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = self._now()

    def on_validation_start(self, trainer, pl_module):
        self._val_start = self._now()
        if not trainer.sanity_checking:
            self.train.append(tuple(b - a for a, b in zip(self._start, self._val_start, strict=True)))

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.val.append(tuple(b - a for a, b in zip(self._val_start, self._now(), strict=True)))


def run(overrides: list[str], run_dir: Path) -> EpochClock:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from detr_ft.config.schema import config_dir
    from detr_ft.train import train

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"run_dir={run_dir}", *overrides])
    clock = EpochClock()
    train(cfg, callbacks=[clock])
    return clock


STEP_CASES = [("detr_small", 8, 128), ("detr_r50", 2, 512)]
STEPS, WARMUP = 5, 2


def step_speedup(model_name: str, batch: int, size: int) -> tuple[float, float]:
    """Median seconds of a frozen training step (forward, loss, backward, AdamW) from the images and from the
    backbone's features computed beforehand (random weights and targets)."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from detr_ft.config.schema import config_dir

    torch.manual_seed(0)
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model_name}", "model.backbone.weights=null"])
    model, criterion = instantiate(cfg.model, num_classes=10), instantiate(cfg.criterion, num_classes=10)
    model.freeze_backbone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    images, mask = torch.randn(batch, 3, size, size), torch.zeros(batch, size, size, dtype=torch.bool)
    boxes = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.5, 0.3, 0.4]])
    targets = [{"labels": torch.tensor([1, 2]), "boxes": boxes} for _ in range(batch)]
    with torch.no_grad():
        features = model.backbone(images, mask)

    def step(cached: bool) -> float:
        start = time.process_time()
        outputs = model.forward_from_features(*features) if cached else model(images, mask)
        loss = criterion(outputs, targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.process_time() - start

    timings = {True: [], False: []}
    for index in range(WARMUP + STEPS):  # alternating, so the machine's load hits both alike
        for cached in (False, True):
            seconds = step(cached)
            if index >= WARMUP:
                timings[cached].append(seconds)
    return tuple(sorted(timings[c])[STEPS // 2] for c in (False, True))


def main(epochs: int = EPOCHS) -> None:
    import torch

    torch.set_num_threads(1)
    print("frozen training step, CPU s (median of 5, alternating): from images / from cached features")
    for model_name, batch, size in STEP_CASES:
        fresh, cached = step_speedup(model_name, batch, size)
        print(
            f"{model_name:10} batch {batch} {size} px: {fresh:.3f} / {cached:.3f} ({fresh / cached:.2f}x)", flush=True
        )
    if epochs < 1:
        return
    with tempfile.TemporaryDirectory() as scratch:
        common = [
            "experiment=quickstart",
            "finetune_strategy=frozen",
            "train.unfreeze_backbone_at_epoch=-1",  # quickstart sets 5 (progressive)
            "data.train_augmentation=false",
            "logger=none",
            f"train.epochs={epochs}",
            "train.num_workers=0",
            f"train.feature_cache_dir={scratch}/features",
            "callbacks.progress_bar=null",
        ]
        cases = {
            "cache off": ["train.cache_backbone_features=false"],
            "cache on, 1st job": ["train.cache_backbone_features=true"],
            "cache on, 2nd job": ["train.cache_backbone_features=true"],
        }
        clocks = {name: run(common + extra, Path(scratch) / f"run{i}") for i, (name, extra) in enumerate(cases.items())}

    print("\nseconds per epoch, wall / CPU (training steps; validation)")
    for name, clock in clocks.items():
        cells = [
            f"epoch {e}: {t[0]:5.1f}/{t[1]:5.1f}; {v[0]:4.1f}/{v[1]:4.1f}"
            for e, (t, v) in enumerate(zip(clock.train, clock.val, strict=True))
        ]
        print(f"{name:18} " + "   ".join(cells))
    off, first, second = clocks.values()

    def epoch(clock: EpochClock, index: int, which: int) -> float:  # which: 0 wall, 1 CPU; train + val
        return clock.train[index][which] + clock.val[index][which]

    lines, sweep = [], {}
    for which, unit in ((1, "CPU"), (0, "wall")):
        off_s, miss_s, hit_s = epoch(off, -1, which), epoch(first, 0, which), epoch(first, -1, which)
        disk_s = epoch(second, 0, which)
        steps_off, steps_hit = off.train[-1][which], first.train[-1][which]
        runs = SWEEP_JOBS * SWEEP_EPOCHS
        # The 1st job computes its epoch 0; the others read theirs from disk; every later epoch reads memory.
        later_epochs = SWEEP_JOBS * (SWEEP_EPOCHS - 1) * hit_s
        sweep[unit] = (runs * off_s / 60, (miss_s + (SWEEP_JOBS - 1) * disk_s + later_epochs) / 60)
        lines += [
            f"{unit:4} s: frozen epoch (train + val) cache off {off_s:.1f}, cache on {hit_s:.1f} "
            f"({off_s / hit_s:.2f}x; training steps alone {steps_off / steps_hit:.2f}x); the cache's first epoch "
            f"{miss_s:.1f} ({miss_s / off_s:.2f}x of off); a 2nd job's first epoch (from disk) {disk_s:.1f}",
            f"      {SWEEP_JOBS}-job LR sweep, {SWEEP_EPOCHS} epochs each, one job after another (estimate): "
            f"{sweep[unit][0]:.1f} min without the cache, {sweep[unit][1]:.1f} min with it "
            f"({sweep[unit][0] / sweep[unit][1]:.2f}x)",
        ]
    print("\n".join(["", *lines]))
    figures = {
        "epochs": epochs,
        "train_wall_cpu_s": {name: clock.train for name, clock in clocks.items()},
        "val_wall_cpu_s": {name: clock.val for name, clock in clocks.items()},
        "sweep_minutes_off_on": sweep,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else EPOCHS)
