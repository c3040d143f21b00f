"""The LightningDataModule over train/val (optional test) splits in any format detr_ft/data/formats/ reads.

The class count and names come from the train split at construction, so the app can build the model before
any image is read and users never type `num_classes`.
"""

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from detr_ft.data.categories import CategoryMap
from detr_ft.data.checks.annotations import category_mismatch
from detr_ft.data.checks.object_counts import ObjectCounts
from detr_ft.data.checks.settings import check_settings
from detr_ft.data.checks.split import DatasetError, read_split
from detr_ft.data.coco import CocoDetection
from detr_ft.data.collate import collate
from detr_ft.data.formats import cache_folder, find_splits
from detr_ft.data.formats.export import keep_as_coco
from detr_ft.data.sampling import EpochSampler
from detr_ft.data.transforms import describe_eval_transforms, make_eval_transforms, make_train_transforms

PATH_KEYS = ("train_images", "train_annotations", "val_images", "val_annotations", "test_images", "test_annotations")


class DetectionDataModule(pl.LightningDataModule):
    def __init__(
        self,
        train_images: str | None = None,
        train_annotations: str | None = None,
        val_images: str | None = None,
        val_annotations: str | None = None,
        batch_size: int = 2,
        num_workers: int = 0,
        test_images: str | None = None,
        test_annotations: str | None = None,
        label_mode: str = "contiguous",
        num_classes: int | None = None,
        train_scales: list[int] = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800),
        max_size: int | None = 1333,
        eval_scale: int = 800,
        crop: bool = True,
        train_augmentation: bool = True,
        skip_bad_images: bool = False,
        pin_memory: bool | None = None,
        name: str = "coco",
        root: str | None = None,
        sampling_seed: int | None = None,
        format: str = "coco",
        classes: list[str] | None = None,
        cache_dir: str | None = None,
    ):
        """`format` and `root` (or data=coco's explicit paths) say where the splits are (detr_ft/data/formats/);
        `classes`: data=voc's class list; `cache_dir`: where data in another format keeps its COCO form.
        `sampling_seed` (train.seed in a run): the training order and augmentation become a function of (seed,
        epoch, image), so a resumed run replays an uninterrupted one; None draws from torch's global generator
        as a plain shuffling DataLoader does."""
        check_settings(**{key: value for key, value in locals().items() if key not in ("self", "__class__")})
        super().__init__()
        paths = (train_images, train_annotations, val_images, val_annotations, test_images, test_annotations)
        self.splits = find_splits(format, root, classes, cache_dir, **dict(zip(PATH_KEYS, paths, strict=True)))
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
        self._annotations = {
            split: read_split(source.images, source.source, split, skip_bad_images, source.read)
            for split, source in self.splits.items()
        }
        # {split: (images folder, COCO file)}; data read from another format is kept in COCO form in the cache.
        self.paths = {
            split: (source.images, source.source)
            if source.read is None
            else (source.images, keep_as_coco(self._annotations[split], cache_folder(cache_dir), f"{name}-{split}"))
            for split, source in self.splits.items()
        }
        self._train_annotations: dict | None = self._annotations["train"]
        self.category_map = CategoryMap.from_coco_categories(self._train_annotations["categories"], label_mode)
        for split, data in self._annotations.items():
            names = {category["id"]: category["name"] for category in data["categories"]}
            if mismatch := category_mismatch(("train", self.category_map.id_names), split, names):
                raise DatasetError(f"{self.splits[split].source}: {mismatch}")
        if num_classes is not None and num_classes != self.category_map.num_classes:
            raise DatasetError(
                f"data.num_classes={num_classes} disagrees with {self.splits['train'].source}, which defines "
                f"{self.category_map.num_classes} classes ({label_mode} labels); remove data.num_classes "
                "(it is read from the data) or fix the data"
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
