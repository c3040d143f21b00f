"""The three fine-tuning strategies, proved through the real training loop on the tiny model:
which parameters change in which epoch, the unfreeze warm-up, and resume before/after the unfreeze epoch."""

import pytest
import pytorch_lightning as pl
import torch

from detr_ft.train import train

NEVER_TRAINED = ("stem", "layer1")


class ParameterChanges(pl.Callback):
    """After each training epoch: the names of the model's parameters that changed during it."""

    def __init__(self):
        self.changed_per_epoch: list[set[str]] = []
        self._before: dict[str, torch.Tensor] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        self._before = {n: p.detach().clone() for n, p in pl_module.model.named_parameters()}

    def on_train_epoch_end(self, trainer, pl_module):
        changed = {n for n, p in pl_module.model.named_parameters() if not torch.equal(p.detach(), self._before[n])}
        self.changed_per_epoch.append(changed)


class LearningRates(pl.Callback):
    """Each optimizer step's learning rate per group, as the optimizer used it."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps.append({g["name"]: g["lr"] for g in optimizer.param_groups})


def _split(names: set[str], model) -> dict[str, set[str]]:
    """Group parameter names by backbone stage (stem, layer1..4) or head."""
    parts: dict[str, set[str]] = {}
    stage_of_param = {id(p): stage for stage in model.backbone.stages for p in model.backbone.stage_parameters(stage)}
    for name, parameter in model.named_parameters():
        if name in names:
            parts.setdefault(stage_of_param.get(id(parameter), "head"), set()).add(name)
    return parts


@pytest.mark.parametrize(
    "strategy, expected_backbone_epochs",
    [("frozen", []), ("full", [0, 1, 2]), ("progressive", [2])],
)
def test_which_parameters_train_in_each_epoch(tiny_cfg, strategy, expected_backbone_epochs):
    cfg = tiny_cfg(
        f"finetune_strategy={strategy}",
        "train.epochs=3",
        "train.unfreeze_backbone_at_epoch=2" if strategy == "progressive" else "train.epochs=3",
    )
    recorder = ParameterChanges()
    module_holder = ModuleHolder()
    train(cfg, callbacks=[recorder, module_holder])
    model = module_holder.module.model
    for epoch, changed in enumerate(recorder.changed_per_epoch):
        parts = _split(changed, model)
        assert parts.get("head"), f"epoch {epoch}: heads must always train"
        for stage in NEVER_TRAINED:
            assert stage not in parts, f"epoch {epoch}: {stage} must never train, changed {parts.get(stage)}"
        backbone_trained = any(s in parts for s in ("layer2", "layer3"))  # the tiny model's trainable stages
        assert backbone_trained == (epoch in expected_backbone_epochs), (strategy, epoch, sorted(parts))


class ModuleHolder(pl.Callback):
    def on_fit_start(self, trainer, pl_module):
        self.module = pl_module


def test_unfreeze_warmup_learning_rates_step_by_step(tiny_cfg):
    # 16 images / batch 4 = 4 steps per epoch; unfreeze at epoch 1 = step 4; warm-up over 3 steps.
    cfg = tiny_cfg(
        "finetune_strategy=progressive",
        "train.unfreeze_backbone_at_epoch=1",
        "train.epochs=2",
        "train.unfreeze_warmup_steps=3",
        "train.learning_rate=1e-3",
        "train.backbone_learning_rate=1e-4",
    )
    rates = LearningRates()
    train(cfg, callbacks=[rates])
    assert len(rates.steps) == 8
    backbone = [step["layer3"] for step in rates.steps]
    head = [step["head"] for step in rates.steps]
    assert backbone[:4] == [0.0] * 4  # frozen: its group is empty of gradients and at rate 0
    assert backbone[4:] == pytest.approx([1e-4 / 3, 2e-4 / 3, 1e-4, 1e-4])
    assert head == pytest.approx([1e-3] * 8)


def _schedule_state(module, trainer) -> dict:
    optimizer = trainer.optimizers[0]
    return {
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
        "unfrozen": list(module.model.backbone.unfrozen_stages),
        "unfreeze_steps": {g["name"]: g["unfreeze_step"] for g in optimizer.param_groups},
        "lrs": {g["name"]: round(g["lr"], 12) for g in optimizer.param_groups},
    }


class FinalState(pl.Callback):
    def on_train_end(self, trainer, pl_module):
        self.state = _schedule_state(pl_module, trainer)


PROGRESSIVE = ["finetune_strategy=progressive", "train.unfreeze_backbone_at_epoch=2", "train.unfreeze_warmup_steps=6"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_cache) -> dict:
    """The uninterrupted 4-epoch progressive run's final schedule state, the one both resumes must reach."""
    from tests.conftest import compose_config

    final = FinalState()
    train(compose_config([*PROGRESSIVE, "train.epochs=4"], tmp_path_factory.mktemp("straight"), data_cache), [final])
    return final.state


@pytest.mark.parametrize("interrupt_after_epochs", [1, 3])  # before and after the unfreeze epoch (2)
def test_resume_of_a_progressive_run_matches_the_uninterrupted_schedule(tiny_cfg, straight, interrupt_after_epochs):
    common = PROGRESSIVE
    first = tiny_cfg(*common, f"train.epochs={interrupt_after_epochs}")
    first_summary = train(first)
    resumed, start = FinalState(), StartEpoch()
    second = tiny_cfg(*common, "train.epochs=4", f"train.resume_from={first_summary.last_checkpoint}")
    train(second, callbacks=[resumed, start])
    assert start.epoch == interrupt_after_epochs, "the resume must continue after the last finished epoch"
    assert resumed.state == straight


class StartEpoch(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.epoch = trainer.current_epoch


def test_a_gradual_unfreeze_schedule_trains_stage_by_stage(tiny_cfg):
    """`train.unfreeze_schedule={layer3: 1, layer2: 2}`: layer3 from epoch 1, layer2 from epoch 2."""
    cfg = tiny_cfg("finetune_strategy=progressive", "train.epochs=3", "train.unfreeze_schedule={layer3: 1, layer2: 2}")
    recorder, holder = ParameterChanges(), ModuleHolder()
    train(cfg, callbacks=[recorder, holder])
    trained = [sorted(set(_split(changed, holder.module.model)) - {"head"}) for changed in recorder.changed_per_epoch]
    assert trained == [[], ["layer3"], ["layer2", "layer3"]]
