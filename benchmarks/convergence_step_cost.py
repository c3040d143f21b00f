"""Cost of a training step with each training-only aid against the paper's recipe: `make run`'s model (detr_small
from the shipped checkpoint, 6 classes), batch 8 of 128 px with 5 boxes each, forward + loss + backward + AdamW,
backbone frozen (epochs 0-4 of make run) and trained (from epoch 5). The arms take turns step by step, so a
machine shared with other work slows them alike; the median per arm and its ratio to the baseline are printed.

    python -m benchmarks convergence --step-cost [--steps 12]
"""

import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from detr_ft.checkpoints.checkpoint_file import read
from detr_ft.checkpoints.weight_loading import load_weights
from detr_ft.config.schema import config_dir
from detr_ft.model.classification import form_of_config

CLASSES = 6


def build(overrides: list[str], frozen: bool):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=quickstart", *overrides])
    torch.manual_seed(0)
    model = instantiate(cfg.model, num_classes=CLASSES)
    checkpoint = read(str(cfg.train.checkpoint_path))  # a softmax head: a sigmoid arm's is re-initialised
    load_weights(model, checkpoint.model_state, strict=False, source_classification=form_of_config(checkpoint.config))
    criterion = instantiate(cfg.criterion, num_classes=CLASSES)
    model.freeze_backbone() if frozen else model.unfreeze_backbone()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    return model, criterion, optimizer


def step(model, criterion, optimizer, images, targets) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(images)
    losses = criterion(outputs, targets)
    optimizer.zero_grad()
    losses["loss"].backward()
    optimizer.step()
    return time.perf_counter() - start


def step_costs(arms: dict[str, list[str]], steps: int, json_path: Path) -> dict:
    """-> per phase and arm: median seconds per step and the ratio to the baseline (also written to json_path
    after each phase)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, 128, 128, generator=generator)
    targets = [
        {
            "labels": torch.randint(0, CLASSES, (5,), generator=generator),
            "boxes": torch.cat([torch.rand(5, 2, generator=generator) * 0.6 + 0.2, torch.full((5, 2), 0.15)], 1),
        }
        for _ in range(8)
    ]
    results = {}
    for frozen in (True, False):
        built = {arm: build(overrides, frozen) for arm, overrides in arms.items()}
        times = {arm: [] for arm in arms}
        for index in range(steps + 2):
            for arm, parts in built.items():
                seconds = step(*parts, images, targets)
                if index >= 2:  # warm-up
                    times[arm].append(seconds)
        phase = "frozen backbone" if frozen else "backbone training"
        medians = {arm: sorted(values)[len(values) // 2] for arm, values in times.items()}
        results[phase] = {arm: {"s_per_step": m, "ratio": m / medians["baseline"]} for arm, m in medians.items()}
        print(f"\nstep cost, {phase} (median of {steps}, arms interleaved):")
        for arm, row in results[phase].items():
            print(f"  {arm:<26} {row['s_per_step'] * 1000:7.0f} ms  x{row['ratio']:.2f}", flush=True)
        json_path.write_text(json.dumps(results, indent=1))
    return results
