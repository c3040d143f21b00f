"""What the Lightning loop adds to the bare training step: one training epoch of `make run`'s model and data
(detr_small on synthetic_v2, batch 8, 128 px, MLflow logging, every callback) against a hand-written loop of
forward, loss, backward, clipping and AdamW step over the same data loader, frozen and full backbone.

    python -m benchmarks loop            # --images 96 (12 steps), --threads N

The epoch is timed from Lightning's epoch start to its end (validation excluded), the bare loop likewise;
both read the batches through the same DataLoader, so data loading is in both.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch


class EpochTimer(pl.Callback):
    def __init__(self):
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds.append(time.perf_counter() - self.start)


def compose(folder: Path, images: int, strategy: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from detr_ft.config.schema import config_dir

    overrides = [
        "experiment=quickstart",
        f"finetune_strategy={strategy}",
        "train.unfreeze_backbone_at_epoch=-1",  # the strategy's own schedule, not quickstart's progressive one
        "train.epochs=1",
        f"data.train_size={images}",
        "data.val_size=8",
        f"data.cache_dir={folder}/data",
        f"logger.tracking_uri=sqlite:///{folder}/mlflow.db",
        "trainer.limit_val_batches=0",
    ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(folder / f"run_{strategy}")
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def bare_epoch(cfg) -> float:
    """The same model, loss, optimizer and data, stepped by hand."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data, batch_size=cfg.train.batch_size, num_workers=cfg.train.num_workers)
    datamodule.setup("fit")
    model = instantiate(cfg.model, num_classes=datamodule.num_classes)
    if cfg.train.freeze_backbone:
        model.freeze_backbone()
    criterion = instantiate(cfg.criterion, num_classes=datamodule.num_classes)
    module = instantiate(cfg.module, model=model, criterion=criterion)
    optimizer = module.configure_optimizers()
    model.train()
    start = time.perf_counter()
    for images, mask, targets in datamodule.train_dataloader():
        loss = criterion(model(images, mask), targets)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.gradient_clip_val)
        optimizer.step()
    return time.perf_counter() - start


def main(argv: list[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks loop")
    parser.add_argument("--images", type=int, default=96, help="training images (batch 8)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(list(argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    from detr_ft.train import train

    print(f"{'strategy':8} {'Lightning epoch s':>18} {'bare loop s':>12} {'overhead':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for strategy in ("frozen", "full"):
            cfg = compose(Path(folder), args.images, strategy)
            bare = bare_epoch(cfg)  # first: also generates the data and warms the allocator
            timer = EpochTimer()
            train(cfg, callbacks=[timer])
            bare = min(bare, bare_epoch(cfg))
            lightning = timer.seconds[0]
            print(f"{strategy:8} {lightning:18.2f} {bare:12.2f} {lightning / bare - 1:9.0%}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
