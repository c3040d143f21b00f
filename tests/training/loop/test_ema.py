"""The EMA of the weights (`train.ema_decay`): its arithmetic against a hand computation, frozen parameters
left out (and right after a progressive unfreeze), validation with the averaged weights, checkpoints holding
both sets and a resume restoring both exactly, and predict, export and fine-tuning reading the EMA weights."""

import math

import pytest
import pytorch_lightning as pl
import torch
from mlflow.tracking import MlflowClient

from detr_ft.checkpoints import checkpoint_file
from detr_ft.inference.detector import Detector
from detr_ft.train import train
from detr_ft.training.evaluation.coco_evaluation import DetectionEvaluator
from detr_ft.training.loop.ema import ExponentialMovingAverage, WeightAverage
from tests.conftest import compose_config, mlflow_store
from tests.training.recorders import EpochMetrics

DECAY, WARMUP = 0.9, 2.0
HEAD, BACKBONE = "class_head.weight", "backbone.body.layer3.0.conv1.weight"


def hand_decay(t: int) -> float:
    return DECAY * (1 - math.exp(-t / WARMUP))


def test_the_average_follows_the_warmed_up_recurrence_and_leaves_frozen_parameters_out():
    model = torch.nn.Linear(2, 1)
    model.bias.requires_grad_(False)
    average = WeightAverage(model, DECAY, WARMUP)
    average.track_trainable()
    start, bias = model.weight.detach().clone(), model.bias.detach().clone()
    assert set(average.averages) == {"weight"}  # no copy of the frozen bias

    expected = start.clone()
    for t, value in enumerate([1.0, -2.0, 0.5], start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        assert average.update() == pytest.approx(hand_decay(t))
        expected = hand_decay(t) * expected + (1 - hand_decay(t)) * torch.full_like(expected, value)
        torch.testing.assert_close(average.averages["weight"], expected)
    assert torch.equal(average.averaged_state()["bias"], bias)  # the frozen one is the raw value

    # Unfrozen later (a progressive unfreeze): its average starts from its value before its first step.
    model.bias.requires_grad_(True)
    average.track_trainable()  # what the callback does before each batch
    with torch.no_grad():
        model.bias.fill_(3.0)
    average.update()
    torch.testing.assert_close(average.averages["bias"], hand_decay(4) * bias + (1 - hand_decay(4)) * 3.0)


def test_swapping_puts_the_averages_in_the_model_and_back():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, DECAY, 0.0)
    average.track_trainable()
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update()
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    averaged = {k: v.clone() for k, v in average.averaged_state().items()}
    assert not torch.equal(raw["weight"], averaged["weight"])
    average.swap()
    assert all(torch.equal(v, averaged[k]) for k, v in model.state_dict().items())
    average.swap()
    assert all(torch.equal(v, raw[k]) for k, v in model.state_dict().items())


class Trajectory(pl.Callback):
    """Two parameters after each optimizer step, which parameters the EMA averaged by the end of each epoch,
    and the trainer and module at the end (for evaluating them by hand)."""

    def __init__(self):
        self.steps: list[dict[str, torch.Tensor]] = []
        self.averaged_names: list[set[str]] = []

    def _ema(self, trainer) -> ExponentialMovingAverage:
        return next(c for c in trainer.callbacks if isinstance(c, ExponentialMovingAverage))

    def on_fit_start(self, trainer, pl_module):
        self.start = self._snapshot(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append(self._snapshot(pl_module))

    def on_train_epoch_end(self, trainer, pl_module):
        self.averaged_names.append(set(self._ema(trainer).average.averages))

    def on_fit_end(self, trainer, pl_module):
        self.trainer, self.module, self.ema = trainer, pl_module, self._ema(trainer).average

    @staticmethod
    def _snapshot(pl_module) -> dict[str, torch.Tensor]:
        parameters = dict(pl_module.model.named_parameters())
        return {name: parameters[name].detach().clone() for name in (HEAD, BACKBONE)}


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory, data_cache):
    """Two epochs with EMA, backbone frozen in epoch 0 and layer3 unfrozen at epoch 1, recorded in MLflow."""
    root = tmp_path_factory.mktemp("ema")
    uri = mlflow_store(root)
    overrides = [
        "finetune_strategy=progressive",
        "train.unfreeze_backbone_at_epoch=1",
        "train.epochs=2",
        f"train.ema_decay={DECAY}",
        f"train.ema_warmup_steps={WARMUP}",
        "train.learning_rate=1e-3",
        "train.backbone_learning_rate=1e-3",
        "logger=mlflow",
        f"logger.tracking_uri={uri}",
        "trainer.log_every_n_steps=1",
    ]
    trajectory, metrics = Trajectory(), EpochMetrics("val/loss", "val/mAP")
    summary = train(compose_config(overrides, root / "run", data_cache), callbacks=[trajectory, metrics])
    return {"summary": summary, "trajectory": trajectory, "metrics": metrics, "uri": uri, "root": root}


def test_the_runs_average_is_the_hand_computed_one_through_a_progressive_unfreeze(ema_run):
    trajectory = ema_run["trajectory"]
    steps = len(trajectory.steps)
    assert steps == 8 and trajectory.ema.updates == 8  # 4 batches an epoch, one update per optimizer step
    assert not any(name.startswith("backbone.") for name in trajectory.averaged_names[0])  # frozen: no copy
    assert BACKBONE in trajectory.averaged_names[1]
    frozen_epoch = [step[BACKBONE] for step in trajectory.steps[:4]]
    assert all(torch.equal(w, trajectory.start[BACKBONE]) for w in frozen_epoch)  # untouched while frozen

    head, backbone = trajectory.start[HEAD].clone(), trajectory.start[BACKBONE].clone()
    for t, step in enumerate(trajectory.steps, start=1):
        head = hand_decay(t) * head + (1 - hand_decay(t)) * step[HEAD]
        if t > 4:  # layer3 trains from epoch 1; its average starts from where it was frozen
            backbone = hand_decay(t) * backbone + (1 - hand_decay(t)) * step[BACKBONE]
    torch.testing.assert_close(trajectory.ema.averages[HEAD], head)
    torch.testing.assert_close(trajectory.ema.averages[BACKBONE], backbone)
    assert not torch.allclose(backbone, trajectory.steps[-1][BACKBONE])  # it really is an average


def _evaluate(module, datamodule, state: dict) -> tuple[float, float]:
    """(val loss, val mAP) of the model holding `state`, computed here without the trainer's callbacks."""
    model = module.model
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    model.eval()
    evaluator = DetectionEvaluator(datamodule.category_map)
    total, count = 0.0, 0
    with torch.no_grad():
        for images, mask, targets in datamodule.val_dataloader():
            outputs = model(images, mask)
            total += float(module.criterion(outputs, targets)["loss"]) * len(targets)
            count += len(targets)
            evaluator.update(outputs, targets)
    mean_ap = evaluator.evaluate(datamodule.val_dataset.coco).metrics["mAP"]
    model.load_state_dict(saved)
    return total / count, mean_ap


def test_validation_scores_the_ema_weights_not_the_raw_ones(ema_run):
    trajectory, logged = ema_run["trajectory"], ema_run["metrics"].epochs[-1]
    datamodule = trajectory.trainer.datamodule
    ema_loss, ema_map = _evaluate(trajectory.module, datamodule, trajectory.ema.averaged_state())
    raw_loss, _ = _evaluate(trajectory.module, datamodule, trajectory.module.model.state_dict())
    assert logged["val/loss"] == pytest.approx(ema_loss, rel=1e-5)
    assert logged["val/mAP"] == pytest.approx(ema_map, abs=1e-6)
    assert abs(raw_loss - ema_loss) > 1e-3  # so the match above says which weights were scored


def test_the_checkpoint_holds_raw_and_ema_weights_and_read_gives_the_ema_model(ema_run):
    trajectory, summary = ema_run["trajectory"], ema_run["summary"]
    raw = torch.load(summary.last_checkpoint, weights_only=True)
    model_raw = trajectory.module.model.state_dict()
    assert all(
        torch.equal(raw["state_dict"]["model." + k], v) for k, v in model_raw.items()
    )  # training goes on from these
    assert raw[checkpoint_file.EMA]["updates"] == 8
    assert all(torch.equal(raw[checkpoint_file.EMA]["weights"][k], v) for k, v in trajectory.ema.averages.items())

    read = checkpoint_file.read(summary.last_checkpoint)
    assert read.weights == "ema" and read.metadata["weights"] == "ema"
    averaged = trajectory.ema.averaged_state()
    assert set(read.model_state) == set(model_raw)
    assert all(torch.equal(read.model_state[k], averaged[k]) for k in averaged)
    assert not torch.equal(read.model_state[HEAD], model_raw[HEAD])
    layer1 = "backbone.body.layer1.0.conv1.weight"  # never trained: the raw value, with no EMA copy stored
    assert layer1 not in raw[checkpoint_file.EMA]["weights"]
    assert torch.equal(read.model_state[layer1], model_raw[layer1])
    assert checkpoint_file.read(summary.best_checkpoint).weights == "ema"


def test_predict_and_export_use_the_ema_weights(ema_run, tmp_path):
    summary, averaged = ema_run["summary"], ema_run["trajectory"].ema.averaged_state()
    detector = Detector(summary.last_checkpoint, device="cpu")
    assert all(torch.equal(v, averaged[k]) for k, v in detector.model.state_dict().items())

    exported = checkpoint_file.read(
        checkpoint_file.export_weights(summary.last_checkpoint, tmp_path / "small.ckpt", half=False)
    )
    assert exported.weights == "ema"
    assert all(torch.equal(exported.model_state[k], averaged[k]) for k in averaged)


def test_mlflow_records_that_the_metrics_come_from_the_ema_weights(ema_run):
    client = MlflowClient(ema_run["uri"])
    run = client.get_run(ema_run["summary"].mlflow_run_id)
    assert run.data.tags["eval_weights"] == "ema"
    assert run.data.params["train/ema_decay"] == str(DECAY)
    decays = sorted(client.get_metric_history(run.info.run_id, "ema/decay"), key=lambda m: m.step)
    assert [m.value for m in decays] == pytest.approx([hand_decay(t) for t in range(1, 9)])
    assert ema_run["summary"].eval_weights == "ema"


class RestoredState(pl.Callback):
    """The EMA and raw weights as a resumed run starts training (after the restore, before any step)."""

    def on_train_start(self, trainer, pl_module):
        ema = next(c for c in trainer.callbacks if isinstance(c, ExponentialMovingAverage)).average
        self.averages = {k: v.clone() for k, v in ema.averages.items()}
        self.updates = ema.updates
        self.raw = {k: v.clone() for k, v in pl_module.model.state_dict().items()}

    def on_train_end(self, trainer, pl_module):
        self.final_updates = next(
            c for c in trainer.callbacks if isinstance(c, ExponentialMovingAverage)
        ).average.updates


def test_a_resume_restores_raw_and_ema_weights_exactly_and_goes_on_averaging(ema_run, data_cache):
    summary = ema_run["summary"]
    saved = torch.load(summary.last_checkpoint, weights_only=True)
    restored = RestoredState()
    overrides = [
        "finetune_strategy=progressive",
        "train.unfreeze_backbone_at_epoch=1",
        "train.epochs=3",
        f"train.ema_decay={DECAY}",
        f"train.ema_warmup_steps={WARMUP}",
        f"train.resume_from={summary.last_checkpoint}",
    ]
    train(compose_config(overrides, ema_run["root"] / "resumed", data_cache), callbacks=[restored])
    assert restored.updates == 8 and restored.final_updates == 12
    assert restored.averages.keys() == saved[checkpoint_file.EMA]["weights"].keys()
    assert all(torch.equal(v, saved[checkpoint_file.EMA]["weights"][k]) for k, v in restored.averages.items())
    assert all(torch.equal(v, saved["state_dict"]["model." + k]) for k, v in restored.raw.items())


def test_without_ema_the_checkpoint_has_raw_weights_only(tiny_run):
    summary = tiny_run  # train.ema_decay=null
    assert checkpoint_file.EMA not in torch.load(summary.last_checkpoint, weights_only=True)
    assert checkpoint_file.read(summary.last_checkpoint).weights == "raw" and summary.eval_weights == "raw"


def test_fine_tuning_from_an_ema_run_starts_from_its_ema_weights(ema_run, tiny_cfg):
    from tests.training.recorders import InitialState

    initial = InitialState()
    train(tiny_cfg(f"train.checkpoint_path={ema_run['summary'].last_checkpoint}"), callbacks=[initial])
    averaged = ema_run["trajectory"].ema.averaged_state()
    assert all(torch.equal(initial.state[k], averaged[k]) for k in averaged)


@pytest.mark.parametrize("key, value", [("train.ema_decay", "1.5"), ("train.ema_warmup_steps", "-1")])
def test_a_bad_ema_setting_is_refused_naming_the_key(tiny_cfg, key, value):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        train(tiny_cfg(f"{key}={value}"))
