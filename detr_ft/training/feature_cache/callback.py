"""`train.cache_backbone_features` (the `callbacks.feature_cache` node): while the backbone never trains, compute
its output for each image once and reuse it in later epochs, and across the jobs of a sweep on the same machine
(on disk). The callback puts the cache in front of the backbone's forward for the run (setup to teardown):
the model, the LightningModule and the datamodule are unchanged by it.

What is cached, and why it is exact: the backbone's output for ONE image of a batch (features [C, h, w]),
keyed by everything that decides it:
- the backbone: a hash of its structure and state (weights, frozen-norm statistics, zero_padding);
- the image: its split's files (images folder, annotation file), its image id, its file's size and mtime;
- the transform: its description (only deterministic transforms are accepted, see `check_cacheable`);
- the padded canvas [H, W] the image was padded to in its batch;
- how it was computed: device type, autocast dtype, torch version.
Each batch element's backbone output depends only on that element's padded input (convolutions and frozen
norms mix nothing across the batch), and that input is the image placed top-left on a zero canvas of the
batch's size. Keying by the canvas (not by the whole batch) is therefore exact for any backbone setting,
including the paper's `zero_padding: false`, where padding leaks into border features. When every image has
the same size under the transform (the built-in data, fixed-size cameras) the canvas is that size and every
image hits from its second epoch on; with mixed sizes an image hits only when it lands on a canvas it was
cached at before (the epoch log shows the hit rate).

Files (detr_ft.training.feature_cache.store): `{dir}/{backbone hash}/{key[:2]}/{key}.pt`, written to a temporary
name and renamed, so parallel jobs share the folder safely (a reader sees a whole file or none). Up to
`memory_bytes` of features are also kept in memory for the run. The cache only ever writes its own files;
delete the folder to reclaim disk.
"""

import logging
import os
from pathlib import Path

import pytorch_lightning as pl
import torch

from detr_ft.training.feature_cache.store import DEFAULT_MEMORY_BYTES, CachedBackboneFeatures
from detr_ft.training.loop.finetuning import BackboneUnfreezing, UnfreezePlan

log = logging.getLogger(__name__)

SPLITS = ("train", "val")  # the splits whose batches go through the cache


def run_plan(unfreezing: BackboneUnfreezing | None, backbone: torch.nn.Module, settings: tuple) -> UnfreezePlan:
    """The run's plan as the strategy callback built it at setup (with finetune_strategy=auto, the rule's choice),
    or, with no such callback (the cache used on its own), the plan of `settings`."""
    built = unfreezing.plan if unfreezing is not None else None
    return built or UnfreezePlan(list(backbone.trainable_stages), *settings)


def check_cacheable(plan: UnfreezePlan, epochs: int, train_transform: dict | None) -> None:
    """ValueError naming the keys at fault when cached backbone features would differ from fresh ones."""
    trained = {stage: plan.start_epochs[stage] for stage in plan.trainable_at(epochs - 1)}
    if trained:
        raise ValueError(
            "train.cache_backbone_features=true needs a backbone that never trains, but this run trains "
            f"{sorted(trained)} ({plan.describe()}; from train.freeze_backbone={plan.freeze_backbone}, "
            f"train.unfreeze_backbone_at_epoch={plan.unfreeze_backbone_at_epoch}, "
            f"train.unfreeze_schedule={plan.unfreeze_schedule or None}). Use finetune_strategy=frozen, or set "
            "train.cache_backbone_features=false"
        )
    if train_transform is None:
        raise ValueError(
            "train.cache_backbone_features=true needs train images that are the same every epoch, but "
            "data.train_augmentation=true applies random flips, resizes and crops to them. Set "
            "data.train_augmentation=false (train images then get the eval transform: shorter side "
            "data.eval_scale), or set train.cache_backbone_features=false"
        )


class BackboneFeatureCache(pl.Callback):
    """`callbacks.feature_cache`: in setup, checks the run can be cached (`check_cacheable`) and puts the cache
    in front of `pl_module.model.backbone`'s forward for the train and val batches; teardown takes it away.
    Logs each epoch's hit rate. `enabled=False` (train.cache_backbone_features=false): does nothing.

    Args:
        enabled: train.cache_backbone_features.
        directory: the shared cache folder (train.feature_cache_dir; None: $DETR_FT_CACHE/features or
            ~/.cache/detr_ft/features).
        freeze_backbone, unfreeze_backbone_at_epoch, unfreeze_schedule: the fine-tuning strategy's keys (the
            cache refuses a plan under which the backbone trains within the run's epochs).
        memory_bytes: how much of the features to keep in memory too.
    """

    def __init__(
        self,
        enabled: bool = False,
        directory: str | Path | None = None,
        freeze_backbone: bool = True,
        unfreeze_backbone_at_epoch: int = -1,
        unfreeze_schedule: dict[str, int] | None = None,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
    ):
        self.enabled = enabled
        self.directory = directory or Path(os.environ.get("DETR_FT_CACHE", "~/.cache/detr_ft")) / "features"
        self.plan_settings = (freeze_backbone, unfreeze_backbone_at_epoch, unfreeze_schedule)
        self.memory_bytes = memory_bytes
        self.cache: CachedBackboneFeatures | None = None
        self.history: list[dict] = []  # per reported epoch and stage: hits and misses
        self._backbone: torch.nn.Module | None = None
        self.unfreezing: BackboneUnfreezing | None = None  # handed over by build_callbacks (training/callbacks.py)
        self._batch: tuple[str, list[dict], tuple] | None = None  # the batch in flight: split, targets, image shape

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # At fit start, after every callback's setup (the strategy's plan is built), before the sanity check.
        if not self.enabled:
            return
        backbone, datamodule = pl_module.model.backbone, trainer.datamodule
        plan = run_plan(self.unfreezing, backbone, self.plan_settings)
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1 << 30
        check_cacheable(plan, epochs, datamodule.deterministic_transform("train"))
        splits = {split: (datamodule.dataset(split), datamodule.deterministic_transform(split)) for split in SPLITS}
        self.cache = CachedBackboneFeatures(self.directory, splits, self.memory_bytes)
        self._backbone = backbone
        backbone.forward = self._cached_forward  # an instance attribute: shadows the class's forward until teardown

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._backbone is not None:
            self._backbone.__dict__.pop("forward", None)
            self._backbone, self._batch = None, None

    def _cached_forward(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        backbone = self._backbone
        compute = type(backbone).forward.__get__(backbone)  # the backbone's own forward
        if self._batch is None or tuple(images.shape) != self._batch[2]:  # not a train or val batch's images
            return compute(images, mask)
        split, targets, _ = self._batch
        return self.cache.features(backbone, images, mask, targets, split, compute=compute)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch = ("train", batch[2], tuple(batch[0].shape)) if self.cache is not None else None

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._batch = ("val", batch[2], tuple(batch[0].shape)) if self.cache is not None else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._batch = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._batch = None

    # ---- each epoch's hit rate ----
    def _report(self, pl_module: pl.LightningModule, stage: str) -> None:
        counts = self.cache.counts
        total = counts["hits"] + counts["misses"]
        if total:
            self.history.append({"epoch": pl_module.current_epoch, "stage": stage, **counts})
            log.info(
                "epoch %d %s: backbone features of %d images from the cache, %d computed (cache: %s)",
                pl_module.current_epoch,
                stage,
                counts["hits"],
                counts["misses"],
                self.cache.store.directory,
            )
            pl_module.log(f"feature_cache/{stage}_hit_rate", counts["hits"] / total, on_epoch=True)
        self.cache.counts = {"hits": 0, "misses": 0}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.cache is not None:
            self._report(pl_module, "train")

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.cache is not None:  # validation runs inside the train epoch: keep its counts apart
            self._train_counts, self.cache.counts = self.cache.counts, {"hits": 0, "misses": 0}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.cache is not None:
            if not trainer.sanity_checking:
                self._report(pl_module, "val")
            self.cache.counts = self._train_counts
