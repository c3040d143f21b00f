"""The recipe a user configures reaches training: every key is proved through `train(cfg)` on the tiny
model by what the optimizer, the loss and the checkpoints really saw (numbers, not just "it ran")."""

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch

from detr_ft.config.schema import ASSETS_DIR
from detr_ft.train import main, train
from tests.conftest import compose_config
from tests.training.recorders import EpochDetections, EpochMetrics, GradientNorms, LearningRates, OutputDtypes

STEPS_PER_EPOCH = 4  # 16 tiny training images / batch 4
BACKBONE_GROUPS = ("layer2", "layer3")  # detr_tiny's trainable stages
ASSET = ASSETS_DIR / "synthetic_pretrained.ckpt"
DEFAULT_CLIP, DEFAULT_PRECISION = 0.1, "32"  # train.gradient_clip_val's and train.precision's defaults


def test_backbone_learning_rate_defaults_to_a_tenth_of_the_head_rate(tiny_cfg):
    rates = LearningRates()
    train(tiny_cfg("finetune_strategy=full", "train.learning_rate=1e-3"), callbacks=[rates])
    assert len(rates.steps) == STEPS_PER_EPOCH
    for step in rates.steps:
        assert step["head"] == pytest.approx(1e-3, rel=1e-12)
        for stage in BACKBONE_GROUPS:
            assert step[stage] == pytest.approx(1e-4, rel=1e-12)


def test_an_explicit_backbone_learning_rate_is_used(tiny_cfg):
    rates = LearningRates()
    cfg = tiny_cfg("finetune_strategy=full", "train.learning_rate=1e-3", "train.backbone_learning_rate=3e-5")
    train(cfg, callbacks=[rates])
    assert [step["layer3"] for step in rates.steps] == pytest.approx([3e-5] * STEPS_PER_EPOCH, rel=1e-12)


def test_warmup_steps_and_lr_drops_reach_the_optimizer(tiny_cfg):
    rates = LearningRates()
    cfg = tiny_cfg(
        "finetune_strategy=full",
        "train.epochs=3",
        "train.learning_rate=1e-3",
        "train.warmup_steps=4",
        "train.lr_drop_epochs=[1,2]",
        "train.lr_drop_factor=0.5",
    )
    train(cfg, callbacks=[rates])
    head = [step["head"] for step in rates.steps]
    expected = [1e-3 * f for f in (0.25, 0.5, 0.75, 1.0)] + [5e-4] * 4 + [2.5e-4] * 4
    assert head == pytest.approx(expected, rel=1e-9)
    backbone = [step["layer2"] for step in rates.steps]
    assert backbone == pytest.approx([value / 10 for value in expected], rel=1e-9)


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory, data_cache) -> dict[str, tuple[GradientNorms, OutputDtypes]]:
    """finetune_strategy=full at the defaults (gradient_clip_val 0.1, precision 32) and with clipping off, each
    trained once with its gradient norms and output dtypes recorded, for the clipping and precision tests."""
    runs = {}
    for name, overrides in (("defaults", []), ("unclipped", ["train.gradient_clip_val=0"])):
        cfg = compose_config(["finetune_strategy=full", *overrides], tmp_path_factory.mktemp(name), data_cache)
        if name == "defaults":
            assert (cfg.train.gradient_clip_val, cfg.train.precision) == (DEFAULT_CLIP, DEFAULT_PRECISION)
        runs[name] = (GradientNorms(), OutputDtypes())
        train(cfg, callbacks=list(runs[name]))
    return runs


@pytest.mark.parametrize("clip", [0.1, 0.02])
def test_gradient_clip_val_bounds_the_gradient_norm_the_optimizer_steps_with(tiny_cfg, full_runs, clip):
    clipped, free = full_runs["defaults"][0], full_runs["unclipped"][0]
    if clip != DEFAULT_CLIP:  # the defaults' run is shared
        clipped = GradientNorms()
        train(tiny_cfg("finetune_strategy=full", f"train.gradient_clip_val={clip}"), callbacks=[clipped])
    assert len(clipped.norms) == STEPS_PER_EPOCH
    assert max(clipped.norms) <= clip * (1 + 1e-4)
    assert min(free.norms) > clip, "unclipped gradients must be larger, or the bound proves nothing"
    assert max(clipped.norms) == pytest.approx(clip, rel=1e-3)  # large gradients are scaled to the bound


def test_eos_coef_reaches_the_loss(tiny_cfg):
    from tests.training.recorders import InitialState

    state = InitialState()
    train(tiny_cfg("criterion.eos_coef=0.3"), callbacks=[state])
    weights = state.module.criterion.class_weight
    assert weights[-1].item() == pytest.approx(0.3) and torch.equal(weights[:-1], torch.ones(len(weights) - 1))


def _final_weights(summary) -> dict[str, torch.Tensor]:
    return torch.load(summary.last_checkpoint, weights_only=True)["state_dict"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_seed_makes_a_run_repeatable_and_another_seed_changes_it(tiny_cfg):
    first = _final_weights(train(tiny_cfg("train.seed=7", "finetune_strategy=full")))
    again = _final_weights(train(tiny_cfg("train.seed=7", "finetune_strategy=full")))
    other = _final_weights(train(tiny_cfg("train.seed=8", "finetune_strategy=full")))
    assert _same(first, again)
    assert not _same(first, other)


# The shipped checkpoint on the classes it knows gives a val/mAP that moves; the tiny model's stays at 0.
FROM_THE_ASSET = [
    "model=detr_small",
    "data.image_size=128",
    "data.train_scales=[128]",
    "data.eval_scale=128",
    "data.max_size=128",
    f"train.checkpoint_path={ASSET}",
]


@pytest.mark.parametrize(
    "monitor, best, start",
    # seed 2: with the seeded epoch sampling, a run whose best val/mAP epoch (1) is not its last
    [("train_loss", min, []), ("val/loss", min, []), ("val/mAP", max, [*FROM_THE_ASSET, "train.seed=2"])],
)
def test_the_best_checkpoint_is_the_best_epoch_of_the_monitored_metric(tiny_cfg, monitor, best, start):
    metrics, detections = EpochMetrics(monitor, "val/mAP"), EpochDetections()
    cfg = tiny_cfg(
        *start, "finetune_strategy=full", "train.epochs=4", "train.learning_rate=1e-3", f"train.monitor={monitor}"
    )
    summary = train(cfg, callbacks=[metrics, detections])
    values = [epoch[monitor] for epoch in metrics.epochs]
    assert len(values) == 4 and len(set(values)) > 1, f"the metric must vary across epochs to tell: {values}"
    expected_epoch = values.index(best(values))
    assert summary.best_epoch == expected_epoch, (values, summary.best_checkpoint)
    assert summary.best_value == pytest.approx(best(values), abs=1e-6)
    assert f"best_epoch={expected_epoch}-" in summary.best_checkpoint
    # The per-class table and pictures follow the monitor when it is a validation metric, else val/mAP.
    maps = [epoch["val/mAP"] for epoch in metrics.epochs]
    assert summary.per_class_epoch == (expected_epoch if monitor.startswith("val/") else maps.index(max(maps)))
    if monitor == "val/mAP":  # the detections file is the best epoch's, not the last one's
        assert expected_epoch != 3, f"the best epoch must not be the last to tell: {values}"
        saved = json.loads((Path(summary.run_dir) / "val_detections_best.json").read_text())
        assert saved == detections.per_epoch[expected_epoch] != detections.per_epoch[-1]


@pytest.mark.parametrize("precision, dtype", [("bf16-mixed", torch.bfloat16), ("32", torch.float32)])
def test_precision_reaches_the_training_step_and_the_loss_stays_fp32(tiny_cfg, full_runs, precision, dtype):
    dtypes = full_runs["defaults"][1]
    if precision != DEFAULT_PRECISION:  # the defaults' run is shared
        dtypes = OutputDtypes()
        train(tiny_cfg("finetune_strategy=full", f"train.precision={precision}"), callbacks=[dtypes])
    assert dtypes.dtypes["network"] == {dtype}
    # The heads (box arithmetic), the matcher's costs and the loss are fp32 whatever the network runs in.
    assert dtypes.dtypes["heads"] == dtypes.dtypes["costs"] == dtypes.dtypes["loss"] == {torch.float32}
    assert dtypes.losses_finite


def test_a_run_folder_that_holds_checkpoints_is_never_overwritten(tmp_path, data_cache, tiny_run):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run_dir)  # a finished run's folder, of our own
    files = {p: p.read_bytes() for p in (run_dir / "checkpoints").glob("*.ckpt")}
    assert len(files) == 2
    with pytest.raises(FileExistsError, match="resume_from"):
        train(compose_config(["train.seed=3"], run_dir, data_cache))
    assert {p: p.read_bytes() for p in (run_dir / "checkpoints").glob("*.ckpt")} == files


def test_main_returns_the_best_monitored_value_to_the_sweeper(tiny_cfg):
    cfg = tiny_cfg("train.epochs=2")
    value = main(cfg)  # what Hydra hands an Optuna sweeper
    assert isinstance(value, float) and math.isfinite(value)
    written = re.search(r"val_mAP=(\d+\.\d{4})\.ckpt$", next(p.name for p in _checkpoints(cfg) if "best" in p.name))
    assert value == pytest.approx(float(written[1]), abs=5e-5)


def _checkpoints(cfg):
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    return sorted((Path(HydraConfig.get().runtime.output_dir) / "checkpoints").glob("*.ckpt"))
