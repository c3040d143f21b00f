"""The LightningDataModule over COCO-format train/val (optional test) splits.

The class count and names come from the train annotation file at construction, so the app can build
the model before any image is read and users never type `num_classes`.
"""

from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from detr_ft.data.categories import CategoryMap
from detr_ft.data.coco import CocoDetection
from detr_ft.data.collate import collate
from detr_ft.data.object_counts import ObjectCounts
from detr_ft.data.sampling import EpochSampler
from detr_ft.data.transforms import describe_eval_transforms, make_eval_transforms, make_train_transforms
from detr_ft.data.validation import DatasetError, read_split


def split_paths(
    train_images: str,
    train_annotations: str,
    val_images: str,
    val_annotations: str,
    test_images: str | None = None,
    test_annotations: str | None = None,
) -> dict[str, tuple[Path, Path]]:
    """{"train": (images folder, annotation file), "val": ..., and "test" when both its paths are set}."""
    _require_paths(train_images, train_annotations, val_images, val_annotations)
    paths = {
        "train": (Path(train_images), Path(train_annotations)),
        "val": (Path(val_images), Path(val_annotations)),
    }
    if test_images and test_annotations:
        paths["test"] = (Path(test_images), Path(test_annotations))
    return paths


def _require_paths(*paths) -> None:
    """data=coco derives the four paths from `data.root`; without it they read `None/...` (or are unset)."""
    if any(path is None or str(path).startswith("None/") for path in paths):
        raise DatasetError(
            "no dataset location: set data.root (a folder in the COCO 2017 layout: train2017/, val2017/, "
            "annotations/instances_{train,val}2017.json) or all four of data.train_images, data.train_annotations, "
            "data.val_images and data.val_annotations"
        )


class DetectionDataModule(pl.LightningDataModule):
    def __init__(
        self,
        train_images: str,
        train_annotations: str,
        val_images: str,
        val_annotations: str,
        batch_size: int = 2,
        num_workers: int = 0,
        test_images: str | None = None,
        test_annotations: str | None = None,
        label_mode: str = "contiguous",
        num_classes: int | None = None,
        train_scales: list[int] = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800),
        max_size: int = 1333,
        eval_scale: int = 800,
        crop: bool = True,
        train_augmentation: bool = True,
        skip_bad_images: bool = False,
        pin_memory: bool | None = None,
        name: str = "coco",
        root: str | None = None,  # only used by the config to derive the paths above
        sampling_seed: int | None = None,
    ):
        """`sampling_seed` (train.seed in a run): the training order and augmentation become a function of
        (seed, epoch, image), so a resumed run replays an uninterrupted one; None draws from torch's global
        generator as a plain shuffling DataLoader does."""
        super().__init__()
        self.paths = split_paths(
            train_images, train_annotations, val_images, val_annotations, test_images, test_annotations
        )
        self.batch_size, self.num_workers, self.sampling_seed = batch_size, num_workers, sampling_seed
        self.label_mode, self.skip_bad_images, self.name = label_mode, skip_bad_images, name
        # train_augmentation=false: train images get the eval transform, the same pixels every epoch (what a
        # cache of backbone features needs).
        self.train_augmentation = train_augmentation
        self.eval_transforms = make_eval_transforms(eval_scale, max_size)
        self._eval_description = describe_eval_transforms(eval_scale, max_size)
        self.train_transforms = (
            make_train_transforms(list(train_scales), max_size, crop) if train_augmentation else self.eval_transforms
        )
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        # Every split read and validated here, before any training step (and once: the datasets reuse it in setup).
        self._annotations = {split: read_split(*paths, split, skip_bad_images) for split, paths in self.paths.items()}
        self._train_annotations: dict | None = self._annotations["train"]
        self.category_map = CategoryMap.from_coco_categories(self._train_annotations["categories"], label_mode)
        for split, data in self._annotations.items():
            ids = sorted(int(category["id"]) for category in data["categories"])
            if ids != self.category_map.category_ids:
                raise DatasetError(
                    f"{self.paths[split][1]} has categories {ids} but the train file {self.paths['train'][1]} "
                    f"has {self.category_map.category_ids}; the splits must share them"
                )
        if num_classes is not None and num_classes != self.category_map.num_classes:
            raise ValueError(
                f"data.num_classes={num_classes} disagrees with {self.paths['train'][1]}, which defines "
                f"{self.category_map.num_classes} classes ({label_mode} labels); remove data.num_classes "
                "(it is read from the file) or fix the file"
            )
        self.datasets: dict[str, CocoDetection] = {}

    @property
    def num_classes(self) -> int:
        return self.category_map.num_classes

    @property
    def class_names(self) -> list[str]:
        return self.category_map.names

    def train_object_counts(self) -> ObjectCounts:
        """Objects per train image, from the annotation file already read (for the start-up report)."""
        data = self._train_annotations if self._train_annotations is not None else self._dataset("train").coco.dataset
        return ObjectCounts.from_coco(data)

    def _dataset(self, split: str) -> CocoDetection:
        if split not in self.datasets:
            images, annotations = self.paths[split]
            transforms = self.train_transforms if split == "train" else self.eval_transforms
            already_read = self._annotations.pop(split, None)  # the dataset's COCO index holds it from now on
            self.datasets[split] = CocoDetection(
                images, annotations, transforms, self.label_mode, self.skip_bad_images, already_read
            )
            if split == "train":
                self._train_annotations = None
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self._dataset("train")
        if stage in (None, "fit", "validate"):
            self._dataset("val")
        if stage in (None, "test") and "test" in self.paths:
            self._dataset("test")

    def deterministic_transform(self, split: str) -> dict | None:
        """What decides the pixels of `split`'s images, or None when its transform is random (augmented train)."""
        if split == "train" and self.train_augmentation:
            return None
        return dict(self._eval_description)

    def dataset(self, split: str) -> CocoDetection:
        """The split's dataset (built on first use)."""
        return self._dataset(split)

    @property
    def val_dataset(self) -> CocoDetection:
        return self._dataset("val")

    def _loader(self, split: str, shuffle: bool, sampler=None) -> DataLoader:
        return DataLoader(
            self._dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle if sampler is None else None,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Each rank's share of every epoch's seeded permutation (Lightning keeps a DistributedSampler as it is)."""
        trainer = self.trainer
        ranks, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = EpochSampler(self._dataset("train"), self.sampling_seed, num_replicas=ranks, rank=rank)
        # Lightning creates a fit's first iterator (and workers prefetch from it) before its own set_epoch call;
        # give the sampler now the epoch that call will give (epochs processed, restored when resuming).
        sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0)
        return self._loader("train", shuffle=True, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.paths:
            raise ValueError("no test split configured: set data.test_images and data.test_annotations")
        return self._loader("test", shuffle=False)
