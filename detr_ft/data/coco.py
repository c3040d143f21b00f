"""The dataset every format becomes (detr_ft/data/formats/): a folder of images and their annotations in COCO form."""

import contextlib
import io
import logging
from pathlib import Path

import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from detr_ft.data.categories import CategoryMap
from detr_ft.data.checks.split import read_split
from detr_ft.data.images import BadImageError, load_rgb
from detr_ft.data.sampling import Draw
from detr_ft.data.transforms import apply

log = logging.getLogger(__name__)


def coco_from_dict(data: dict) -> COCO:
    """A pycocotools COCO index built from already-validated data, without its prints."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


class CocoDetection(Dataset):
    """Items are (image float [3, H, W] normalised, target) where target holds `boxes` [N, 4] cxcywh in
    [0, 1] of the transformed image, `labels` int64 [N], `image_id`, `orig_size` and `size` (h, w)."""

    def __init__(
        self,
        images_dir: str | Path,
        annotations_file: str | Path,
        transforms,
        label_mode: str = "contiguous",
        skip_bad_images: bool = False,
        annotations: dict | None = None,
    ):
        """`annotations`: the file's content when the caller has already read it with `read_split`
        (COCO's train file is 450 MB: reading it once matters); otherwise it is read and validated here."""
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise FileNotFoundError(f"image folder {self.images_dir} does not exist")
        self.annotations_file = Path(annotations_file)
        if annotations is None:
            annotations = read_split(self.images_dir, self.annotations_file, skip_bad_images=skip_bad_images)
        self.coco = coco_from_dict(annotations)
        self.category_map = CategoryMap.from_coco_categories(self.coco.dataset["categories"], label_mode)
        self.image_ids = sorted(self.coco.imgs)
        self.transforms = transforms
        self.skip_bad_images = skip_bad_images
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, item: int | Draw):
        """`item`: an index (augmentation from the global generators) or a `Draw` (index and its own seed)."""
        index, seed = item if isinstance(item, Draw) else (item, None)
        for attempt in range(len(self)):
            image_id = self.image_ids[(index + attempt) % len(self)]
            try:
                return self._load(image_id, seed)
            except BadImageError as error:
                if not self.skip_bad_images:
                    raise BadImageError(f"{error} (set data.skip_bad_images=true to skip such files)") from None
                self.skipped += 1
                log.warning("skipped bad image (%d so far in this worker): %s", self.skipped, error)
        raise BadImageError(f"every image in {self.images_dir} failed to load")

    def _load(self, image_id: int, seed: int | None = None):
        info = self.coco.imgs[image_id]
        image = load_rgb(self.images_dir / info["file_name"])
        annotations = [a for a in self.coco.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
        boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy pixels
        labels = torch.tensor([self.category_map.label_of(a["category_id"]) for a in annotations], dtype=torch.int64)
        orig_size = torch.tensor(image.shape[-2:], dtype=torch.int64)
        image, boxes, labels = apply(self.transforms, image, boxes, labels, seed)
        target = {
            "boxes": boxes,
            "labels": labels,
            "image_id": torch.tensor(image_id, dtype=torch.int64),
            "orig_size": orig_size,
            "size": torch.tensor(image.shape[-2:], dtype=torch.int64),
        }
        return image, target
