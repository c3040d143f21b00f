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
    """The dtypes seen in training steps: the input projection's output (bf16 under bf16-mixed autocast), the class and
    box heads' outputs, the matcher's costs, the loss (all three fp32 always), and whether every loss was finite."""

    def __init__(self):
        self.dtypes: dict[str, set[torch.dtype]] = {"network": set(), "heads": set(), "costs": set(), "loss": set()}
        self.losses_finite = True

    def on_fit_start(self, trainer, pl_module):
        def recorder(kind):
            def record(module, inputs, output):
                if module.training:
                    self.dtypes[kind].add(output.dtype)

            return record

        model, criterion = pl_module.model, pl_module.criterion
        model.input_proj.register_forward_hook(recorder("network"))
        model.class_head.register_forward_hook(recorder("heads"))
        model.box_head.register_forward_hook(recorder("heads"))

        losses_and_matches = criterion.losses_and_matches  # what the training step calls

        def record_loss(*args):
            losses, matches = losses_and_matches(*args)
            if criterion.training:
                self.dtypes["loss"].add(losses["loss"].dtype)
                self.losses_finite &= bool(torch.isfinite(losses["loss"]))
            return losses, matches

        criterion.losses_and_matches = record_loss
        cost = criterion.matcher._cost

        def record_cost(*args):
            result = cost(*args)
            self.dtypes["costs"].add(result.dtype)
            return result

        criterion.matcher._cost = record_cost


class EpochDetections(pl.Callback):
    """The COCO results the evaluation callback scored, per validation epoch."""

    def __init__(self):
        self.per_epoch: list[list[dict]] = []

    def on_validation_end(self, trainer, pl_module):
        from detr_ft.training.evaluation.coco_evaluation import CocoEvaluation

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
