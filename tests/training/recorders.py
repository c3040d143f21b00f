"""Lightning callbacks that record what the training loop really did, so tests can assert the numbers."""

import pytorch_lightning as pl
import torch


class LearningRates(pl.Callback):
    """Each optimizer step's learning rate per group, as the optimizer used it."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps.append({g["name"]: g["lr"] for g in optimizer.param_groups})


class GradientNorms(pl.Callback):
    """The total gradient norm the optimizer steps with, i.e. after any clipping: recorded right after the
    LightningModule's `configure_gradient_clipping` hook, which Lightning calls on every step (clipping or not)
    just before the optimizer update (`on_before_optimizer_step` runs before clipping)."""

    def __init__(self):
        self.norms: list[float] = []

    def on_fit_start(self, trainer, pl_module):
        clip = pl_module.configure_gradient_clipping

        def clip_and_record(optimizer, *args, **kwargs):
            clip(optimizer, *args, **kwargs)
            grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

        pl_module.configure_gradient_clipping = clip_and_record


class EpochMetrics(pl.Callback):
    """The metrics Lightning holds at the end of each training epoch (after that epoch's validation)."""

    def __init__(self, *names: str):
        self.names, self.epochs = names, []

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = trainer.callback_metrics
        self.epochs.append({name: float(metrics[name]) for name in self.names if name in metrics})


class InitialState(pl.Callback):
    """The model's weights as training starts (after the initial weights were loaded, before any step)."""

    def on_fit_start(self, trainer, pl_module):
        self.state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
        self.module = pl_module


class OutputDtypes(pl.Callback):
    """The dtype of the class head's output in each training step (bf16 under bf16-mixed autocast)."""

    def __init__(self):
        self.dtypes: set[torch.dtype] = set()

    def on_fit_start(self, trainer, pl_module):
        def record(module, inputs, output):
            if module.training:
                self.dtypes.add(output.dtype)

        pl_module.model.class_head.register_forward_hook(record)


class EpochDetections(pl.Callback):
    """The COCO results the evaluation callback scored, per validation epoch."""

    def __init__(self):
        self.per_epoch: list[list[dict]] = []

    def on_validation_end(self, trainer, pl_module):
        from detr_ft.training.evaluation import CocoEvaluation

        evaluation = next(c for c in trainer.callbacks if isinstance(c, CocoEvaluation))
        self.per_epoch.append([dict(r) for r in evaluation.evaluator.results])


class PauseAtEpoch(pl.Callback):
    """Writes `marker` and sleeps at the start of `epoch` (after the previous epoch's last.ckpt), so a test can
    kill the process at a known point."""

    def __init__(self, epoch: int, marker: str):
        self.epoch, self.marker = epoch, marker

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            import pathlib
            import time

            pathlib.Path(self.marker).write_text(str(trainer.global_step))
            time.sleep(3600)
